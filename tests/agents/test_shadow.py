"""Shadow-agent discovery: request shapes, the evidence, the report through the app, and adopting a key."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from interlock.agents.shadow import (
    Shape,
    SignalBuffer,
    TrafficSignals,
    _Pending,
    assess,
    framework_of,
    shape_of,
    suspects,
)
from interlock.app import create_app
from interlock.cli.main import app as cli
from interlock.settings import load_settings
from interlock.store.signal_queries import SignalRow
from interlock.types import ChatRequest
from tests.conftest import ADMIN_KEY, FAKE_CONFIG

TOOLS = [{"type": "function", "function": {"name": "read_inbox", "parameters": {"type": "object"}}}]


def _request(messages: list[dict[str, Any]], tools: bool = False) -> ChatRequest:
    return ChatRequest.model_validate({"model": "echo", "messages": messages, **({"tools": TOOLS} if tools else {})})


def test_user_agents_of_agent_frameworks_are_named_and_plain_sdks_are_not() -> None:
    assert framework_of("langchain-openai/0.3.1 OpenAI/Python 1.60") == "langchain"
    assert framework_of("python-httpx/0.28 LlamaIndex/0.12") == "llamaindex"
    assert framework_of("CrewAI/0.86") == "crewai"
    assert framework_of("openai-agents/0.1 OpenAI/Python 1.70") == "openai-agents"
    # As captured from the clients themselves (README, "Coding agents"):
    assert framework_of("Agents/Python 0.24.0") == "openai-agents"
    assert framework_of("codex_exec/0.171.0 (Debian 12.0.0; x86_64) xterm (codex_exec; 0.171.0)") == "codex"
    assert framework_of("codex_cli_rs/0.50.0") == "codex"
    assert framework_of("claude-cli/2.1.197 (external, sdk-cli)") == "claude-code"
    assert framework_of("pydantic-ai/2.68.0") == "pydantic-ai"
    assert framework_of("OpenAI/Python 1.60.0") == ""
    assert framework_of("Anthropic/Python 0.45.0") == ""
    assert framework_of("curl/8.5.0") == ""


def test_shape_counts_tools_tool_results_and_turns_without_keeping_text() -> None:
    first = shape_of(_request([{"role": "system", "content": "s"}, {"role": "user", "content": "pay bills"}], True))
    assert (first.with_tools, first.with_tool_results, first.turns) == (True, False, 1)
    step = shape_of(
        _request(
            [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "pay bills"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "read_inbox", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "3 bills"},
            ],
            True,
        )
    )
    assert (step.with_tool_results, step.turns) == (True, 3)
    assert step.prefix == first.prefix and len(step.prefix) == 24  # the same conversation
    other = shape_of(_request([{"role": "system", "content": "s"}, {"role": "user", "content": "other"}]))
    assert other.prefix != first.prefix
    assert "pay" not in step.prefix


def test_prefixes_remembered_per_key_and_bounded() -> None:
    buf = SignalBuffer()
    assert not buf.seen_before("k1", "p")
    assert buf.seen_before("k1", "p")
    assert not buf.seen_before("k2", "p")  # per key
    for i in range(600):
        buf.seen_before("k1", f"x{i}")
    assert len(buf.prefixes["k1"]) == 512
    assert not buf.seen_before("k1", "p")  # the oldest was forgotten


def test_assessment_strong_and_weak_signals() -> None:
    chat_app = assess("k", [SignalRow("k", 1, requests=100, continued=60)])  # a chatbot resends its history
    assert chat_app.score == 1 and not suspects([SignalRow("k", 1, requests=100, continued=60)], set())
    tools_and_steps = [SignalRow("k", 1, requests=20, with_tools=20, continued=15)]
    assert [a.score for a in suspects(tools_and_steps, set())] == [2]  # two weak signals
    agent = [SignalRow("a", 1, requests=10, with_tools=10, with_tool_results=6, tool_call_answers=5),
             SignalRow("a", 2, requests=4, framework="langchain")]  # fmt: skip
    found = suspects(agent + tools_and_steps, set())
    assert [a.key_id for a in found] == ["a", "k"]  # strongest first
    a = found[0]
    assert (a.requests, a.with_tool_results, a.frameworks, a.first_hour, a.last_hour) == (14, 6, ("langchain",), 1, 2)
    assert any("tool results" in e and "6 of 14" in e for e in a.evidence)
    assert not suspects(agent, {"a"})  # agents' own keys are not shadows


class _Sink:
    def __init__(self) -> None:
        self.rows: list[SignalRow] = []
        self.fail = False

    async def add_traffic_signals(self, rows: list[SignalRow]) -> None:
        if self.fail:
            raise ConnectionError("down")
        self.rows.extend(rows)

    async def prune_traffic_signals(self, before_hour: int) -> int:
        return 0


def test_counts_are_kept_when_the_store_refuses_a_flush() -> None:
    sink = _Sink()
    hook = TrafficSignals(sink)
    hook.buffer.add("k", 5 * 3600.0, _Pending(Shape(True, True, 3, "p"), "crewai", True, True))
    sink.fail = True
    asyncio.run(hook.flush())
    assert sink.rows == [] and hook.buffer.counts  # kept
    sink.fail = False
    hook.buffer.add("k", 5 * 3600.0, _Pending(Shape(False, False, 1, "p"), "", False))
    asyncio.run(hook.flush())
    assert sink.rows == [SignalRow("k", 5, 2, 1, 1, 1, 1, "crewai")]
    assert not hook.buffer.counts


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    config = tmp_path / "interlock.toml"
    config.write_text(FAKE_CONFIG)
    monkeypatch.setenv("INTERLOCK_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "home"))
    settings = load_settings(config, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as c:
        c.config = config  # type: ignore[attr-defined]
        yield c


def _flush(client: TestClient) -> None:
    """Write the app's buffered signals now (the server does it every 30 s)."""
    gateway = client.app.state.interlock.gateway  # type: ignore[attr-defined]
    signals = next(h for h in gateway._output if isinstance(h, TrafficSignals))
    client.portal.call(signals.flush)  # type: ignore[union-attr]


def _key(client: TestClient, name: str) -> tuple[str, str]:
    r = client.post("/admin/keys", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["key"]


def _step(client: TestClient, key: str, messages: list[dict[str, Any]], ua: str) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": messages, "tools": TOOLS},
        headers={"authorization": f"Bearer {key}", "user-agent": ua},
    )
    assert r.status_code == 200, r.text


def test_an_agentic_key_is_reported_with_evidence_and_adopted_as_an_agent(client: TestClient) -> None:
    agent_key_id, agent_key = _key(client, "batch-jobs")
    chat_key_id, chat_key = _key(client, "chat-app")
    start: list[dict[str, Any]] = [
        {"role": "system", "content": "You file expenses."},
        {"role": "user", "content": "file March"},
    ]
    for i in range(3):  # an agent loop: ask, run the tool, feed its result back
        _step(client, agent_key, start, "langchain-openai/0.3 OpenAI/Python 1.60")
        history: list[dict[str, Any]] = [
            *start,
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": f"c{i}", "type": "function", "function": {"name": "read_inbox", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": f"c{i}", "content": "receipt 12 EUR"},
        ]
        _step(client, agent_key, history, "langchain-openai/0.3 OpenAI/Python 1.60")
    r = client.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {chat_key}", "user-agent": "OpenAI/Python 1.60"},
    )
    assert r.status_code == 200
    _flush(client)

    report = client.get("/admin/shadow-agents")
    assert report.status_code == 200, report.text
    data = report.json()["data"]
    assert [d["key"]["id"] for d in data] == [agent_key_id]  # the chat app is not a suspect
    found = data[0]
    assert found["requests"] == 6 and found["with_tool_results"] == 3 and found["frameworks"] == ["langchain"]
    assert found["continued"] >= 2 and "key" not in found["key"]  # never the secret
    assert any("tool results" in e for e in found["evidence"])
    assert chat_key_id not in report.text

    owner = client.post("/admin/owners", json={"name": "Ann", "email": "ann@example.com"}).json()["id"]
    adopted = client.post(
        f"/admin/shadow-agents/{agent_key_id}/adopt",
        json={"name": "expense-bot", "owner_id": owner, "description": "files expenses", "policy": {"deny": ["*"]}},
    )
    assert adopted.status_code == 201, adopted.text
    agent_id = adopted.json()["id"]
    assert client.get("/admin/shadow-agents").json()["data"] == []  # governed now
    again = client.post(
        f"/admin/shadow-agents/{agent_key_id}/adopt",
        json={"name": "expense-bot-2", "owner_id": owner, "description": "x"},
    )
    assert again.status_code == 400 and again.json()["error"]["code"] == "key_is_agent"

    # The same key now authenticates as the agent: its policy applies (every tool denied) and it can be halted.
    halted = client.post("/admin/halts", json={"scope": "agent", "id": agent_id, "reason": "review"})
    assert halted.status_code == 201, halted.text
    r = client.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": start},
        headers={"authorization": f"Bearer {agent_key}"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "agent_halted"


def test_bad_window_and_unknown_key_are_client_errors(client: TestClient) -> None:
    assert client.get("/admin/shadow-agents?since_hours=0").status_code == 400
    assert client.get("/admin/shadow-agents?since_hours=abc").status_code == 400
    assert client.get("/admin/shadow-agents?since_hours=" + "9" * 5000).status_code == 400  # not int()'s 4300 digits
    assert client.get("/admin/shadow-agents?since_hours=²").status_code == 400  # a digit to isdigit(), not to int()
    owner = client.post("/admin/owners", json={"name": "Ann", "email": "ann@example.com"}).json()["id"]
    r = client.post("/admin/shadow-agents/key_nope/adopt", json={"name": "x", "owner_id": owner, "description": "d"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "key_not_found"
    _, key = _key(client, "plain")
    assert client.get("/admin/shadow-agents", headers={"authorization": f"Bearer {key}"}).status_code in (401, 403)


def test_cli_reports_and_adopts(client: TestClient) -> None:
    key_id, key = _key(client, "cron-agent")
    for _ in range(2):
        _step(
            client,
            key,
            [{"role": "user", "content": "go"}, {"role": "tool", "tool_call_id": "c", "content": "done"}],
            "CrewAI/0.86",
        )
    _flush(client)
    runner = CliRunner()
    config = str(client.config)  # type: ignore[attr-defined]
    out = runner.invoke(cli, ["agents", "shadow", "--config", config])
    assert out.exit_code == 0, out.output
    assert key_id in out.output and "crewai" in out.output
    owner = client.post("/admin/owners", json={"name": "Bo", "email": "bo@example.com"}).json()["id"]
    out = runner.invoke(
        cli, ["agents", "adopt", key_id, "--owner", owner, "--description", "nightly jobs", "--config", config]
    )
    assert out.exit_code == 0, out.output
    assert "agt_" in out.output
    out = runner.invoke(cli, ["agents", "shadow", "--config", config])
    assert out.exit_code == 0 and key_id not in out.output
