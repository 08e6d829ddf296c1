"""MCP calls as steps of their run, and agents' sessions told of tool changes, over real sockets: `interlock
serve` in a subprocess fronting the test MCP server we own (stdio), the official `mcp` SDK's client as the agent.

Two upstreams: `bank`, and `rug` (rug-pulls once its flag file appears).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import MCPError
from prometheus_client.parser import text_string_to_metric_families

from interlock.audit.chain import AuditEntry
from tests.conftest import FAKE_CONFIG
from tests.e2e.conftest import Server, start_server
from tests.mcp_gateway.helpers import admin, audit_entries, ledger_rows, mcp_client, new_agent, stdio_server

pytestmark = pytest.mark.subprocess

IBAN = "DE89370400440532013000"
POLICY = {"allow": ["bank__*", "rug__*"]}


def _config(flag: Path) -> str:
    return (
        FAKE_CONFIG + "\n[mcp]\nrefresh_s = 0.2\n" + stdio_server("bank") + stdio_server("rug", TEST_MCP_FLAG=str(flag))
    )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    tmp = tmp_path_factory.mktemp("mcp-runs")
    flag = tmp / "rug-pull"
    server = start_server(tmp, _config(flag))
    try:
        for name in ("bank", "rug"):
            r = admin("POST", server, f"/admin/mcp/servers/{name}/approve")
            assert r.status_code == 200, r.text
        yield server, flag
    finally:
        server.proc.terminate()
        server.proc.wait(15)


def _agent(server: Server, name: str, caps: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return new_agent(server, name, description="pays", policy=POLICY, caps=caps)


def _audit(server: Server, action: str, where: Callable[[dict[str, Any]], bool], at_least: int = 1) -> list[AuditEntry]:
    """Entries of `action` whose metadata satisfies `where`."""
    return audit_entries(server, action, lambda e: where(e.metadata_dict()), at_least)


async def test_mcp_calls_are_steps_of_their_run_and_its_step_cap_stops_them(gateway: tuple[Server, Path]) -> None:
    server, _ = gateway
    agent, key = _agent(server, "stepper", {"max_steps": 2})
    async with mcp_client(server, key, run="job-1") as client:
        assert not (await client.call_tool("bank__whoami", {})).is_error
        assert not (await client.call_tool("bank__send_money", {"iban": IBAN, "amount": 1})).is_error
        with pytest.raises(MCPError) as stopped:
            await client.call_tool("bank__send_money", {"iban": IBAN, "amount": 2})
    assert stopped.value.message.startswith("run_step_cap:") and "max_steps" in stopped.value.message
    assert stopped.value.data["code"] == "run_step_cap"
    async with mcp_client(server, key, run="job-2") as client:  # another run goes on
        assert not (await client.call_tool("bank__whoami", {})).is_error
    model = httpx.post(  # the MCP calls counted in the run the agent's model requests share
        server.url + "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "next step"}]},
        headers={"authorization": f"Bearer {key}", "x-interlock-run-id": "job-1"},
        timeout=30,
    )
    assert model.status_code == 403 and model.json()["error"]["code"] == "run_step_cap"
    (entry, *_) = _audit(
        server, "agent.run_stopped", lambda m: m.get("agent_id") == agent["id"] and m.get("via") == "mcp"
    )
    meta = entry.metadata_dict()
    assert (meta["code"], meta["run_id"], meta["tool"], meta["steps"]) == (
        "run_step_cap",
        "job-1",
        "bank__send_money",
        2,
    )
    assert meta["owner_id"] == agent["owner_id"] and entry.decision == "deny"


async def test_a_repeated_mcp_call_is_refused_as_a_loop_and_changed_arguments_are_not(
    gateway: tuple[Server, Path],
) -> None:
    server, _ = gateway
    agent, key = _agent(server, "looper", {})
    async with mcp_client(server, key, run="loop-1") as client:
        for amount in (1, 2, 3):  # retries with changed arguments: new calls
            assert not (await client.call_tool("bank__send_money", {"iban": IBAN, "amount": amount})).is_error
        for _ in range(2):
            assert not (await client.call_tool("bank__whoami", {})).is_error
        with pytest.raises(MCPError) as looped:
            await client.call_tool("bank__whoami", {})
        assert looped.value.data["code"] == "run_loop" and "'bank__whoami' 3 times" in looped.value.message
        assert not (await client.call_tool("bank__read_inbox", {})).is_error  # moving on is no loop
    async with mcp_client(server, key, run="loop-2") as client:  # a cycle: whoami, read_inbox, whoami, read_inbox
        for tool in ("bank__whoami", "bank__read_inbox", "bank__whoami"):
            assert not (await client.call_tool(tool, {})).is_error
        with pytest.raises(MCPError) as cycled:
            await client.call_tool("bank__read_inbox", {})
    assert cycled.value.data["code"] == "run_loop" and "'bank__whoami' -> 'bank__read_inbox'" in cycled.value.message
    stops = _audit(server, "agent.run_stopped", lambda m: m.get("agent_id") == agent["id"], at_least=2)
    assert {(e.metadata_dict()["run_id"], e.metadata_dict()["code"]) for e in stops} >= {
        ("loop-1", "run_loop"),
        ("loop-2", "run_loop"),
    }
    looping = _audit(
        server, "agent.tool_call", lambda m: m.get("agent_id") == agent["id"] and m["verdict"] == "run_loop", 2
    )
    assert len(looping) == 2 and IBAN not in json.dumps([e.metadata_dict() for e in looping])


async def test_every_mcp_call_leaves_one_ledger_row_naming_the_tool_the_run_and_the_verdict(
    gateway: tuple[Server, Path],
) -> None:
    server, _ = gateway
    policy = {"allow": ["bank__*"], "deny": ["bank__read_inbox"]}
    agent, key = new_agent(server, "accounted", description="pays", policy=policy, caps={"max_steps": 4})
    async with mcp_client(server, key, run="acct-1") as client:
        assert not (await client.call_tool("bank__send_money", {"iban": IBAN, "amount": 7})).is_error
        assert (await client.call_tool("bank__read_inbox", {})).is_error  # the policy denies it
        assert (await client.call_tool("bank__nothing_here", {})).is_error  # no such tool
        assert not (await client.call_tool("bank__whoami", {})).is_error
        with pytest.raises(MCPError, match="run_step_cap"):
            await client.call_tool("bank__whoami", {"again": True})
    rows = ledger_rows(server, agent["id"], at_least=5)
    got = [(r["endpoint"], r["alias"], r["status"], r["deployment"], r["run_id"]) for r in rows]
    assert got == [
        ("mcp", "bank__send_money", 200, "mcp:bank", "acct-1"),
        ("mcp", "bank__read_inbox", 403, "", "acct-1"),
        ("mcp", "bank__nothing_here", 404, "", "acct-1"),
        ("mcp", "bank__whoami", 200, "mcp:bank", "acct-1"),
        ("mcp", "bank__whoami", 403, "", "acct-1"),
    ]
    assert [r["error"].split(":")[0] if r["error"] else None for r in rows] == [
        None,
        "tool_not_allowed",
        "tool_unknown",
        None,
        "run_step_cap",
    ]
    first = rows[0]
    assert (first["provider"], first["upstream_model"], first["owner_id"], first["key_id"]) == (
        "mcp",
        "send_money",
        agent["owner_id"],
        agent["key_id"],
    )
    assert first["cost_micros"] == 0 and first["prompt_tokens"] == 0 and first["latency_ms"] > 0
    assert len({r["request_id"] for r in rows}) == 5
    assert IBAN not in json.dumps(rows)  # the ledger names tools and verdicts, never argument values


async def test_without_a_run_id_a_session_is_the_run(gateway: tuple[Server, Path]) -> None:
    """Handshake-era sessions: `mcp_<session id>`; 2026-07-28 requests (no session): one run per agent."""
    server, _ = gateway
    _, key = _agent(server, "sessions", {"max_steps": 1})
    for _ in range(2):  # each new session is a new run
        async with mcp_client(server, key, mode="legacy") as client:
            assert not (await client.call_tool("bank__whoami", {})).is_error
            with pytest.raises(MCPError, match="run_step_cap"):
                await client.call_tool("bank__whoami", {})
    _, key = _agent(server, "stateless", {"max_steps": 1})
    async with mcp_client(server, key) as client:
        assert not (await client.call_tool("bank__whoami", {})).is_error
    async with mcp_client(server, key) as client:
        with pytest.raises(MCPError, match="run_step_cap"):
            await client.call_tool("bank__whoami", {})
    (entry, *_) = _audit(server, "agent.run_stopped", lambda m: m.get("via") == "mcp" and m["run_id"] == "mcp")
    assert entry.metadata_dict()["code"] == "run_step_cap"


async def test_connected_sessions_are_told_of_a_rug_pull_and_of_the_re_approval(
    gateway: tuple[Server, Path],
) -> None:
    server, flag = gateway
    _, key = _agent(server, "watcher", {})
    heard = anyio.Event()
    told: list[str] = []

    async def handler(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            told.append(message.method)
            heard.set()

    async with (
        mcp_client(server, key) as modern,
        mcp_client(server, key, mode="legacy", message_handler=handler) as legacy,
        modern.listen(tools_list_changed=True) as changes,
    ):
        assert "rug__send_money" in {t.name for t in (await legacy.list_tools()).tools}
        events = changes.__aiter__()
        flag.touch()  # the upstream changes send_money's description and sends tools/list_changed
        with anyio.fail_after(20):
            await events.__anext__()  # a 2026-07-28 client: on its subscriptions/listen stream
            await heard.wait()  # a handshake-era client: on its session's stream
        assert "rug__send_money" not in {t.name for t in (await modern.list_tools()).tools}
        heard = anyio.Event()
        r = admin("POST", server, "/admin/mcp/servers/rug/approve", json={"force": True})
        assert r.status_code == 200, r.text
        with anyio.fail_after(20):
            await events.__anext__()
            await heard.wait()
        assert "rug__send_money" in {t.name for t in (await legacy.list_tools()).tools}
    assert told == ["notifications/tools/list_changed"] * 2


async def test_a_malformed_run_id_is_refused_with_a_clear_error(gateway: tuple[Server, Path]) -> None:
    server, _ = gateway
    _, key = _agent(server, "typo", {})
    async with mcp_client(server, key, run="no spaces, please") as client:
        with pytest.raises(MCPError, match="x-interlock-run-id must be 1 to 128"):
            await client.call_tool("bank__whoami", {})


def _halts(server: Server) -> dict[str, float]:
    """`interlock_agent_halts_total` by reason."""
    text = admin("GET", server, "/metrics").text
    return {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "interlock_agent_halts_total"
    }


async def test_stopped_runs_and_halted_agents_on_mcp_count_as_halts(gateway: tuple[Server, Path]) -> None:
    server, _ = gateway
    agent, key = _agent(server, "counted", {"max_steps": 1})
    before = _halts(server)
    async with mcp_client(server, key, run="job-metrics") as client:
        assert not (await client.call_tool("bank__whoami", {})).is_error
        with pytest.raises(MCPError, match="run_step_cap"):
            await client.call_tool("bank__whoami", {})
        after_cap = _halts(server)
        r = admin("POST", server, "/admin/halts", json={"scope": "agent", "id": agent["id"], "reason": "runaway"})
        assert r.status_code == 201, r.text
        with pytest.raises(MCPError, match="agent_halted"):  # the halt stays: this agent is not used again
            await client.call_tool("bank__whoami", {})
    after_halt = _halts(server)
    assert after_cap.get("run_cap", 0) == before.get("run_cap", 0) + 1
    assert after_halt.get("kill_switch", 0) >= after_cap.get("kill_switch", 0) + 1
