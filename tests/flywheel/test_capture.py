"""Capture through the app: off by default, on by scope, after the guardrails, erasable, pruned."""

from __future__ import annotations

import getpass
import json
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from interlock.cli.main import app as cli
from interlock.flywheel.capture import CaptureWriter, mask, wants
from interlock.settings import CaptureSettings
from tests.conftest import ADMIN_KEY
from tests.flywheel.conftest import Captures, app_client, chat, new_key
from tests.store.conftest import pg_url  # noqa: F401  (the fixture)

EMAIL = "ann.smith@example.com"
PHONE = "(415) 555-0132"


def test_nothing_is_captured_by_default(tmp_path: Path) -> None:
    with app_client(tmp_path, extra="") as client:
        chat(client, "hello there")
        assert not hasattr(client.app.state, "capture")  # type: ignore[attr-defined]
        store = client.app.state.interlock.store  # type: ignore[attr-defined]
        assert client.portal.call(store.list_captures) == []  # type: ignore[union-attr]


def test_only_the_opted_in_alias_is_captured_with_its_route_tokens_cost_and_latency(
    client: TestClient, captures: Captures
) -> None:
    key_id, token = new_key(client)
    rid = chat(client, "what is the capital of France", token=token)
    chat(client, "not me", token=token, model="echo-remote")
    rows = captures()
    assert [r.request_id for r in rows] == [rid]
    row = rows[0]
    assert row.key_id == key_id and row.alias == "echo" and row.deployment and row.provider == "fake"
    assert row.prompt_tokens > 0 and row.completion_tokens > 0 and row.cost_micros > 0 and row.latency_ms > 0
    assert row.variant == "" and row.endpoint == "chat"
    assert json.loads(row.request)["messages"] == [{"role": "user", "content": "what is the capital of France"}]
    assert json.loads(row.response) == {"role": "assistant", "content": "echo: what is the capital of France"}
    assert token not in row.request + row.response and ADMIN_KEY not in row.request + row.response


def test_the_capture_holds_the_redacted_text_and_never_a_restored_pseudonym(
    client: TestClient, captures: Captures
) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": f"Mail {EMAIL} or call {PHONE}"}]},
    )
    assert r.status_code == 200, r.text
    assert EMAIL in r.json()["choices"][0]["message"]["content"]  # the client gets the real value back
    row = captures()[0]
    stored = row.request + row.response
    assert EMAIL not in stored and "555-0132" not in stored
    assert "<EMAIL_ADDRESS_1>" in json.loads(row.response)["content"]
    assert "<PHONE_NUMBER>" in json.loads(row.request)["messages"][0]["content"]


def test_a_streamed_answer_is_captured_as_the_client_got_it(client: TestClient, captures: Captures) -> None:
    body = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": f"one two three {EMAIL}"}]}
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
        "".join(r.iter_lines())
    row = captures()[0]
    assert row.request_id == rid
    assert json.loads(row.response)["content"] == "echo: one two three <EMAIL_ADDRESS_1>"


def test_failed_requests_are_not_captured(client: TestClient, captures: Captures) -> None:
    r = client.post(
        "/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "[[fail]]"}]}
    )
    assert r.status_code >= 500
    assert captures() == []


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (CaptureSettings(), False),  # off by default
        (CaptureSettings(enabled=True), False),  # on, but no scope opted in
        (CaptureSettings(enabled=True, keys=["key_a"]), True),
        (CaptureSettings(enabled=True, keys=["key_b"]), False),
        (CaptureSettings(enabled=True, teams=["team_1"]), True),
        (CaptureSettings(enabled=True, orgs=["org_1"]), True),
        (CaptureSettings(enabled=True, agents=["agent_1"]), True),
        (CaptureSettings(enabled=True, models=["gpt"]), True),
        (CaptureSettings(enabled=True, models=["other"]), False),
        (CaptureSettings(enabled=True, keys=["*"]), True),
        (CaptureSettings(enabled=False, keys=["*"]), False),
    ],
)
def test_scopes(settings: CaptureSettings, expected: bool) -> None:
    principal = SimpleNamespace(key_id="key_a", team_id="team_1", org_id="org_1", agent_id="agent_1")
    assert wants(settings, principal, "gpt") is expected  # type: ignore[arg-type]


def test_mask_puts_values_back_behind_their_placeholders_also_json_escaped() -> None:
    placeholders = {"<PERSON_1>": 'Ann "A" Smith', "<PERSON_2>": "Ann"}
    assert mask('Dear Ann "A" Smith and Ann', placeholders) == "Dear <PERSON_1> and <PERSON_2>"
    assert mask('{"to": "Ann \\"A\\" Smith"}', placeholders) == '{"to": "<PERSON_1>"}'


def test_erase_by_request_key_and_subject_is_audited(tmp_path: Path, client: TestClient, captures: Captures) -> None:
    key_a, token_a = new_key(client, "a")
    _, token_b = new_key(client, "b")
    first = chat(client, "one", token=token_a)
    chat(client, "two", token=token_a)
    chat(client, "three", token=token_b, user="customer-42")
    chat(client, "four", token=token_b)
    assert len(captures()) == 4
    r = client.post(
        "/v1/feedback",
        json={"request_id": first, "metric": "correct", "value": True},
        headers={"authorization": f"Bearer {token_a}"},
    )
    assert r.status_code == 201, r.text
    store = client.app.state.interlock.store  # type: ignore[attr-defined]
    erased = client.portal.call(lambda: store.erase_captures(subject="customer-42"))  # type: ignore[union-attr]
    assert erased.captures == 1 and {r.subject for r in captures()} == {""}
    erased = client.portal.call(lambda: store.erase_captures(request_id=first))  # type: ignore[union-attr]
    assert (erased.captures, erased.feedback) == (1, 1)
    erased = client.portal.call(lambda: store.erase_captures(key_id=key_a))  # type: ignore[union-attr]
    assert erased.captures == 1 and all(r.key_id != key_a for r in captures())
    assert len(captures()) == 1


def test_the_cli_lists_and_erases_captures_and_the_erasure_is_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: TestClient, captures: Captures
) -> None:
    chat(client, "keep me", user="u1")
    rid = chat(client, "forget me", user="u2")
    assert len(captures()) == 2
    monkeypatch.setenv("INTERLOCK_CONFIG", str(tmp_path / "interlock.toml"))
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    out = runner.invoke(cli, ["captures", "list"])
    assert out.exit_code == 0, out.output
    assert rid in out.output and "forget me" in out.output
    out = runner.invoke(cli, ["captures", "list", "--json", "--limit", "1"])
    assert out.exit_code == 0 and json.loads(out.output.splitlines()[0])["request_id"] == rid
    out = runner.invoke(cli, ["captures", "delete", "--subject", "u2"])
    assert out.exit_code == 0 and "Erased 1 captures" in out.output, out.output
    out = runner.invoke(cli, ["captures", "delete", "--key", "k", "--subject", "u2"])
    assert out.exit_code == 2 and "exactly one" in out.output
    assert [r.subject for r in captures()] == ["u1"]
    db = sqlite3.connect(tmp_path / "home" / "interlock.db")
    try:
        rows = db.execute("SELECT actor_name, metadata FROM audit WHERE action = 'captures.erase'").fetchall()
    finally:
        db.close()
    assert len(rows) == 1 and rows[0][0] == f"cli:{getpass.getuser()}"
    meta = json.loads(rows[0][1])
    assert meta["by"] == "subject" and meta["captures"] == 1 and "u2" not in rows[0][1]


def test_pruning_removes_old_captures_then_the_oldest_past_the_size_cap(client: TestClient, captures: Captures) -> None:
    for i in range(4):
        chat(client, f"message number {i}")
    rows = captures()
    assert len(rows) == 4
    store = client.app.state.interlock.store  # type: ignore[attr-defined]
    size = max(r.size for r in rows)
    cap = CaptureSettings(enabled=True, models=["echo"], max_mb=(size * 2.5) / (1024 * 1024))
    writer = CaptureWriter(store, cap)
    assert client.portal.call(writer.prune) == 2  # type: ignore[arg-type]
    kept = captures()
    assert [r.request_id for r in kept] == [r.request_id for r in rows[:2]]  # the newest two
    later = time.time() + 31 * 86400  # past the 30-day default retention
    assert client.portal.call(lambda: writer.prune(now=later)) == 2
    assert captures() == []


def test_capture_feedback_and_erasure_on_postgresql(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    with app_client(tmp_path, store_url=pg_url) as client:
        _, token = new_key(client)
        rid = chat(client, f"write to {EMAIL}", token=token, user="subject-1")
        chat(client, "not captured", token=token, model="echo-remote")
        store = client.app.state.interlock.store  # type: ignore[attr-defined]
        client.portal.call(store.flush)  # type: ignore[union-attr]
        client.portal.call(client.app.state.capture.flush)  # type: ignore[attr-defined]
        rows = client.portal.call(store.list_captures)  # type: ignore[union-attr]
        assert [r.request_id for r in rows] == [rid] and EMAIL not in rows[0].request + rows[0].response
        body = {"request_id": rid, "metric": "correct", "value": True}
        assert client.post("/v1/feedback", json=body, headers={"authorization": f"Bearer {token}"}).status_code == 201
        erased = client.portal.call(lambda: store.erase_captures(subject="subject-1"))  # type: ignore[union-attr]
        assert (erased.captures, erased.feedback) == (1, 1)


TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_are_captured_whole(client: TestClient, captures: Captures, stream: bool) -> None:
    body = {"model": "echo", "stream": stream, "tools": TOOLS, "messages": [{"role": "user", "content": "find it"}]}
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        "".join(r.iter_lines())
    row = captures()[0]
    calls = json.loads(row.response)["tool_calls"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("lookup", {"echo": True})
    ]
    assert json.loads(row.request)["tools"][0]["function"]["name"] == "lookup"


def test_the_anthropic_api_is_captured_too(client: TestClient, captures: Captures) -> None:
    body = {"model": "echo", "max_tokens": 50, "messages": [{"role": "user", "content": "bonjour"}]}
    r = client.post("/v1/messages", json=body, headers={"x-api-key": ADMIN_KEY})
    assert r.status_code == 200, r.text
    row = captures()[0]
    assert row.endpoint == "messages" and json.loads(row.response)["content"] == "echo: bonjour"
