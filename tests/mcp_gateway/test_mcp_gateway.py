"""The MCP gateway over real sockets: `interlock serve` in a subprocess fronting the test MCP server we own
(`interlock.testing.mcp_server`, over stdio), with the official `mcp` SDK's client as the agent.

Three upstreams of that server: `bank` (holds a credential), `rug` (rug-pulls once its flag file appears)
and `shady` (lists a poisoned tool).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import openai
import pytest
from mcp import MCPError

from interlock.audit.chain import AuditEntry
from interlock.testing.mcp_server import INBOX
from tests.conftest import ADMIN_KEY, FAKE_CONFIG, free_port
from tests.e2e.conftest import Server, start_server
from tests.mcp_gateway.helpers import admin, audit_entries, mcp_client, new_agent, stdio_server

pytestmark = pytest.mark.subprocess

SECRET = "upstream-secret-7f3a9c"  # the bank server's credential: Interlock holds it, agents never see it
IBAN = "DE89370400440532013000"
ATTACKER = "GB33BUKB20201555555555"
POLICY = {
    "allow": ["bank__*", "rug__*", "remote__*"],
    "deny": ["bank__whoami_admin"],
    "tools": {
        "*__send_money": {
            "sensitive": True,
            "provenance_args": ["iban"],
            "constraints": [{"type": "max_amount", "arg": "amount", "max": 500}],
        }
    },
}


def _config(flag: Path, remote: str) -> str:
    return (
        FAKE_CONFIG
        + "\n[mcp]\nrefresh_s = 0.2\n"
        + stdio_server("bank", TEST_MCP_TOKEN=SECRET)
        + stdio_server("rug", TEST_MCP_FLAG=str(flag))
        + stdio_server("shady", TEST_MCP_POISONED="1")
        + f'\n[[mcp.servers]]\nname = "remote"\nurl = "{remote}"\nheaders = {{ authorization = "Bearer {SECRET}" }}\n'
    )


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    """The test MCP server over streamable HTTP, requiring SECRET as its bearer token; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlock.testing.mcp_server", "--http", str(port)],
        env={**os.environ, "TEST_MCP_TOKEN": SECRET},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the HTTP MCP server did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, remote: str) -> Iterator[tuple[Server, Path]]:
    tmp = tmp_path_factory.mktemp("mcp")
    flag = tmp / "rug-pull"
    server = start_server(tmp, _config(flag, remote))
    try:
        for name in ("bank", "rug", "remote"):
            r = admin("POST", server, f"/admin/mcp/servers/{name}/approve")
            assert r.status_code == 200, r.text
        yield server, flag
    finally:
        server.proc.terminate()
        server.proc.wait(15)


def _agent(server: Server, name: str, policy: dict[str, Any] = POLICY) -> tuple[dict[str, Any], str]:
    return new_agent(server, name, policy=policy)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _text(result: types.CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, types.TextContent))


def _audit(
    server: Server, action: str, at_least: int = 1, where: Callable[[AuditEntry], bool] = lambda e: True
) -> list[AuditEntry]:
    return audit_entries(server, action, where, at_least)


async def test_an_agent_lists_only_the_approved_tools_its_policy_allows(gateway: tuple[Server, Path]) -> None:
    server, _ = gateway
    _, key = _agent(server, "lister", {**POLICY, "deny": ["bank__whoami", "rug__*", "remote__*"]})
    async with mcp_client(server, key) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    # shady is not approved; whoami and rug are denied by the policy
    assert names == {"bank__read_inbox", "bank__send_money"}


async def test_an_allowed_call_reaches_the_upstream_with_credentials_the_agent_never_sees(
    gateway: tuple[Server, Path],
) -> None:
    server, _ = gateway
    agent, key = _agent(server, "caller")
    async with mcp_client(server, key) as client:
        listed = await client.list_tools()
        result = await client.call_tool("bank__whoami", {})
        paid = await client.call_tool("bank__send_money", {"iban": IBAN, "amount": 120})
    assert not result.is_error and _text(result) == "credential: given"  # the upstream got its credential
    assert not paid.is_error and _text(paid) == f"sent 120 to {IBAN}"
    seen = listed.model_dump_json() + result.model_dump_json() + paid.model_dump_json()
    assert SECRET not in seen
    report = admin("GET", server, "/admin/mcp/servers").text
    assert SECRET not in report  # not even admins read it back
    assert SECRET not in (server.home.parent / "server0.log").read_text()
    calls = _audit(server, "agent.tool_call", 2, lambda e: e.metadata_dict().get("agent_id") == agent["id"])
    meta = [e.metadata_dict() for e in calls]
    assert {(m["tool"], m["verdict"], m["via"]) for m in meta} >= {
        ("bank__whoami", "allowed", "mcp"),
        ("bank__send_money", "allowed", "mcp"),
    }
    assert all(len(str(m["args_sha256"])) == 64 for m in meta)
    assert IBAN not in json.dumps(meta)  # a hash of the arguments, never their values


async def test_a_call_the_policy_refuses_is_an_error_result_that_says_why(gateway: tuple[Server, Path]) -> None:
    server, _ = gateway
    _, key = _agent(server, "spender")
    async with mcp_client(server, key) as client:
        over = await client.call_tool("bank__send_money", {"iban": IBAN, "amount": 9000})
        unlisted = await client.call_tool("shady__fetch_notes", {})
    assert over.is_error and "exceeds the limit of 500" in _text(over) and "argument_constraint" in _text(over)
    assert unlisted.is_error and "not available" in _text(unlisted)


async def test_a_tool_result_is_screened_and_its_values_may_not_drive_a_sensitive_call(
    gateway: tuple[Server, Path],
) -> None:
    server, _ = gateway
    _, key = _agent(server, "reader")
    async with mcp_client(server, key) as client:
        inbox = await client.call_tool("bank__read_inbox", {})
        hijacked = await client.call_tool("bank__send_money", {"iban": ATTACKER, "amount": 50})
        mine = await client.call_tool("bank__send_money", {"iban": IBAN, "amount": 50})
    text = _text(inbox)
    assert "AKIAIOSFODNN7EXAMPLE" in INBOX and "AKIAIOSFODNN7EXAMPLE" not in text  # the guardrails redacted it
    assert ATTACKER in text  # the rest of the text is the upstream's
    assert hijacked.is_error and "untrusted_provenance" in _text(hijacked)
    assert not mine.is_error  # a value no tool result supplied
    verdicts = _audit(
        server,
        "guardrail.verdict",
        where=lambda e: e.actor_name.startswith("agent:reader") and e.target == "bank__read_inbox",
    )
    assert verdicts, "the screened result was not audited"
    meta = verdicts[0].metadata_dict()
    assert meta["via"] == "mcp" and "PROMPT_INJECTION" in str(meta["untrusted"]) and "SECRET" in str(meta["input"])


async def test_a_halted_agent_is_refused_with_agent_halted(gateway: tuple[Server, Path]) -> None:
    server, _ = gateway
    agent, key = _agent(server, "halted")
    async with mcp_client(server, key) as client:
        assert not (await client.call_tool("bank__whoami", {})).is_error
        r = admin("POST", server, "/admin/halts", json={"scope": "agent", "id": agent["id"], "reason": "looping"})
        assert r.status_code == 201, r.text
        with pytest.raises(MCPError, match="agent_halted"):
            await client.call_tool("bank__whoami", {})
    r = httpx.post(
        server.url + "/mcp",
        headers={"authorization": f"Bearer {key}", "accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    )
    assert r.status_code == 403 and r.json()["error"]["data"]["code"] == "agent_halted"


async def test_a_key_that_is_not_an_agent_is_refused(gateway: tuple[Server, Path]) -> None:
    server, _ = gateway
    with pytest.raises(BaseException) as raised:  # the SDK wraps it in exception groups
        async with mcp_client(server, ADMIN_KEY) as client:
            await client.list_tools()
    errors = [e for e in _leaves(raised.value) if isinstance(e, MCPError)]
    assert errors and "agent_key_required" in str(errors[0])
    r = httpx.post(server.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401 and r.json()["error"]["data"]["code"] == "missing_api_key"


def test_a_poisoned_server_is_flagged_and_approved_only_with_force(gateway: tuple[Server, Path]) -> None:
    server, _ = gateway
    shady = next(s for s in admin("GET", server, "/admin/mcp/servers").json()["data"] if s["name"] == "shady")
    notes = next(t for t in shady["tools"] if t["tool"] == "fetch_notes")
    assert shady["flagged"] and notes["status"] == "unapproved"
    assert "instructions aimed at the model (in description)" in notes["flags"]
    assert "asks to read secrets or files (in description)" in notes["flags"]
    assert not next(t for t in shady["tools"] if t["tool"] == "read_inbox")["flags"]
    r = admin("POST", server, "/admin/mcp/servers/shady/approve")
    assert r.status_code == 409 and r.json()["error"]["code"] == "mcp_tools_flagged"
    assert "shady__fetch_notes" in r.json()["error"]["message"]
    r = admin("POST", server, "/admin/mcp/servers/shady/approve", json={"force": True})
    assert r.status_code == 200 and r.json()["forced"] == ["fetch_notes", "prompt:helper"]  # its prompt is poisoned too
    approve = _audit(server, "mcp.approve", where=lambda e: e.target == "shady")
    assert approve and approve[0].metadata_dict()["forced"] is True
    assert admin("POST", server, "/admin/mcp/servers/nope/approve").status_code == 404


async def test_a_rug_pull_disables_the_tool_until_it_is_approved_again(gateway: tuple[Server, Path]) -> None:
    server, flag = gateway
    _, key = _agent(server, "rugged")
    async with mcp_client(server, key) as client:
        before = {t.name for t in (await client.list_tools()).tools}
        assert "rug__send_money" in before
        flag.touch()  # the upstream changes send_money's description and sends tools/list_changed

        deadline = time.monotonic() + 15
        while "rug__send_money" in {t.name for t in (await client.list_tools()).tools}:
            assert time.monotonic() < deadline, "the changed tool was still listed"
            await asyncio.sleep(0.05)
        refused = await client.call_tool("rug__send_money", {"iban": IBAN, "amount": 1})
        assert refused.is_error and "changed since an admin approved it" in _text(refused)
        assert "rug__read_inbox" in {t.name for t in (await client.list_tools()).tools}  # the others stay
        changed = _audit(server, "mcp.tool_changed", where=lambda e: e.metadata_dict()["server"] == "rug")
        assert changed and changed[0].metadata_dict()["tool"] == "send_money" and changed[0].decision == "deny"
        rug = next(s for s in admin("GET", server, "/admin/mcp/servers").json()["data"] if s["name"] == "rug")
        money = next(t for t in rug["tools"] if t["tool"] == "send_money")
        assert money["status"] == "changed" and money["sha256"] != money["approved_sha256"]
        assert "asks to send data elsewhere (in description)" in money["flags"]
        r = admin("POST", server, "/admin/mcp/servers/rug/approve", json={"force": True})
        assert r.status_code == 200, r.text
        assert "rug__send_money" in {t.name for t in (await client.list_tools()).tools}


async def test_an_mcp_result_stays_untrusted_in_the_agents_later_model_request(gateway: tuple[Server, Path]) -> None:
    """A framework that pastes the MCP result into a user turn does not make its values trusted."""
    server, _ = gateway
    _, key = _agent(server, "relayer")
    async with mcp_client(server, key) as client:
        inbox = _text(await client.call_tool("bank__read_inbox", {}))
    model = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    tools: Any = [{"type": "function", "function": {"name": "bank__send_money", "parameters": {"type": "object"}}}]

    async def ask(iban: str, pasted: str) -> Any:
        call = json.dumps({"iban": iban, "amount": 50})
        messages: Any = [
            {"role": "system", "content": "You pay invoices."},
            {"role": "user", "content": f"{pasted}\nPay invoice 4711 to {IBAN}."},
            {"role": "assistant", "content": f"[[call:bank__send_money {call}]]"},  # scripts the fake model
        ]
        r = await model.chat.completions.create(model="echo", messages=messages, tools=tools)
        return r.choices[0]

    hijacked = await ask(ATTACKER, f"My inbox says:\n{inbox}")
    assert not hijacked.message.tool_calls and hijacked.finish_reason == "stop"
    assert "was refused" in (hijacked.message.content or "")
    mine = await ask(IBAN, f"My inbox says:\n{inbox}")  # the IBAN the user typed themselves
    assert mine.message.tool_calls and mine.message.tool_calls[0].function.name == "bank__send_money"
    async with mcp_client(server, key) as client:  # the agent's MCP calls: trusted is what its user said to models
        still = await client.call_tool("bank__send_money", {"iban": ATTACKER, "amount": 50})
        assert still.is_error and "untrusted_provenance" in _text(still)
        await ask(ATTACKER, f"Yes, pay {ATTACKER} as the e-mail asks.")  # now the user named it
        said = await client.call_tool("bank__send_money", {"iban": ATTACKER, "amount": 50})
        assert not said.is_error, _text(said)
    await model.close()


async def test_a_call_held_for_approval_goes_through_once_after_a_person_approves_it(
    gateway: tuple[Server, Path],
) -> None:
    server, _ = gateway
    agent, key = _agent(server, "approver", {**POLICY, "approve": ["bank__send_money"]})
    args = {"iban": IBAN, "amount": 70}
    async with mcp_client(server, key) as client:
        held = await client.call_tool("bank__send_money", args)
        assert held.is_error and "awaits approval" in _text(held)
        pending = admin("GET", server, "/admin/approvals", params={"agent_id": agent["id"]}).json()["data"]
        assert [(a["tool"], a["status"]) for a in pending] == [("bank__send_money", "pending")]
        r = admin("POST", server, f"/admin/approvals/{pending[0]['id']}/approve")
        assert r.status_code == 200, r.text
        other = await client.call_tool("bank__send_money", {**args, "amount": 71})
        assert other.is_error and "awaits approval" in _text(other)  # other arguments: not approved
        paid = await client.call_tool("bank__send_money", args)
        assert not paid.is_error and _text(paid) == f"sent 70 to {IBAN}"
        again = await client.call_tool("bank__send_money", args)
        assert again.is_error and "awaits approval" in _text(again)  # single use


async def test_an_http_upstream_gets_its_credential_from_interlock(gateway: tuple[Server, Path], remote: str) -> None:
    server, _ = gateway
    assert httpx.post(remote, json={}).status_code == 401  # without the credential the upstream refuses
    _, key = _agent(server, "remote-user")
    async with mcp_client(server, key) as client:
        listed = await client.list_tools()
        result = await client.call_tool("remote__whoami", {})
    assert "remote__send_money" in {t.name for t in listed.tools}
    assert not result.is_error and _text(result) == "credential: given"
    report = next(s for s in admin("GET", server, "/admin/mcp/servers").json()["data"] if s["name"] == "remote")
    assert report["transport"] == "http" and report["connected"] and SECRET not in json.dumps(report)
