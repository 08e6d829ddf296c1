"""Runs, caps, the loop breaker, halts mid-stream and spend velocity per agent, through the real app."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from interlock.agents.runs import derive_run_id
from interlock.governance.velocity import VelocityGuard
from interlock.plugins.hooks import Hook, HookContext, ModelResponse
from interlock.store.agent_queries import HaltRecord
from interlock.store.records import UsageRecord
from interlock.types import ChatChunk, ChatRequest
from tests.agents.helpers import admin_client

WORDS = [f"word{i}" for i in range(30)]
TOOLS = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in ("search", "pay")]


class HaltMidStream(Hook[HookContext]):
    """Plays the governance role halting an agent while its answer streams (run `halt-me`, eighth batch)."""

    name = "test-halt"
    phase = "policy"

    def __init__(self) -> None:
        self.state: Any = None
        self.batches = 0

    async def on_batch(self, ctx: HookContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        if ctx.run_id != "halt-me" or not ctx.principal.agent_id:
            return batch
        self.batches += 1
        if self.batches == 8:
            halt = HaltRecord("agent", ctx.principal.agent_id, "runaway", "oversight", time.time())
            await self.state.store.upsert_halt(halt)
            await self.state.keys.refresh()  # what `admin.agents.halt` does
        return batch

    async def after(self, ctx: HookContext, response: ModelResponse) -> ModelResponse:
        if ctx.run_id == "halt-me" and ctx.principal.agent_id:  # the halt lands while the model works
            halt = HaltRecord("agent", ctx.principal.agent_id, "runaway", "oversight", time.time())
            await self.state.store.upsert_halt(halt)
            await self.state.keys.refresh()
        return response


@pytest.fixture
def halter() -> HaltMidStream:
    return HaltMidStream()


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, halter: HaltMidStream) -> Iterator[TestClient]:
    with admin_client(tmp_path, monkeypatch, hooks=[halter]) as c:
        halter.state = c.app.state.interlock  # type: ignore[attr-defined]
        yield c


def _agent(client: TestClient, caps: dict[str, Any], name: str = "loop-bot") -> tuple[dict[str, Any], str]:
    owner = client.post("/admin/owners", json={"name": "Ann Owner", "email": f"ann-{name}@example.com"})
    assert owner.status_code == 201, owner.text
    r = client.post(
        "/admin/agents",
        json={"name": name, "owner_id": owner.json()["id"], "description": "does tasks", "caps": caps},
    )
    assert r.status_code == 201, r.text
    return r.json(), r.json()["key"]


def _chat(client: TestClient, key: str, messages: list[dict[str, Any]], run: str | None = None, **extra: Any) -> Any:
    headers = {"authorization": f"Bearer {key}", **({"x-interlock-run-id": run} if run else {})}
    return client.post(
        "/v1/chat/completions", json={"model": "echo", "messages": messages, "tools": TOOLS, **extra}, headers=headers
    )


def _task(*calls: tuple[str, str]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You do tasks."},
        {"role": "user", "content": "find the invoice"},
    ]
    for i, (name, args) in enumerate(calls):
        call = {"id": f"c{i}", "type": "function", "function": {"name": name, "arguments": args}}
        messages += [
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "none"},
        ]
    return messages


def _rows(client: TestClient) -> list[UsageRecord]:
    store = client.app.state.interlock.store  # type: ignore[attr-defined]
    client.portal.call(store.flush)
    return client.portal.call(store.usage_rows)  # type: ignore[no-any-return]


def _audit(client: TestClient, action: str) -> list[Any]:
    audit = client.app.state.interlock.audit  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while True:
        found = [e for e in client.portal.call(audit.recent, 200) if e.action == action]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def _events(r: Any) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"]


def test_the_step_cap_stops_a_run_before_the_model_and_other_runs_go_on(client: TestClient) -> None:
    agent, key = _agent(client, {"max_steps": 2})
    assert agent["caps"]["max_steps"] == 2 and agent["caps"]["loop_repeats"] == 3
    for _ in range(2):
        assert _chat(client, key, _task(), run="task-1").status_code == 200
    r = _chat(client, key, _task(), run="task-1")
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "run_step_cap" and "max_steps" in err["message"] and "new task" in err["message"]
    assert _chat(client, key, _task(), run="task-2").status_code == 200
    received = client.app.state.interlock.providers["echo"].received  # type: ignore[attr-defined]
    assert len(received) == 3  # the refused step never reached the model
    (stopped,) = _audit(client, "agent.run_stopped")
    meta = json.loads(stopped.metadata)
    assert (meta["code"], meta["run_id"], meta["agent_id"]) == ("run_step_cap", "task-1", agent["id"])
    runs = [row.run_id for row in _rows(client) if row.agent_id]
    assert sorted(runs) == ["task-1", "task-1", "task-1", "task-2"]
    assert 'interlock_agent_halts_total{reason="run_cap"} 1.0' in client.get("/metrics").text


def test_without_the_header_the_run_id_is_derived_and_on_the_ledger_row(client: TestClient) -> None:
    agent, key = _agent(client, {"max_steps": 2})
    first = _chat(client, key, _task())
    assert first.status_code == 200
    assert _chat(client, key, _task(("search", '{"q": "a"}'))).status_code == 200  # the same task, a later step
    r = _chat(client, key, _task(("search", '{"q": "a"}'), ("search", '{"q": "b"}')))
    assert r.status_code == 403 and r.json()["error"]["code"] == "run_step_cap"
    expected = derive_run_id(
        agent["id"], ChatRequest.model_validate({"model": "echo", "messages": _task(), "tools": TOOLS})
    )
    assert {row.run_id for row in _rows(client) if row.agent_id} == {expected}
    assert first.headers["x-interlock-run-id"] == expected  # the agent learns its run id
    other = [{"role": "system", "content": "You do tasks."}, {"role": "user", "content": "another task"}]
    assert _chat(client, key, other).status_code == 200  # a new first message: a new run


def test_spend_and_token_caps_stop_the_next_step(client: TestClient) -> None:
    _, key = _agent(client, {"max_spend_micros": 1}, name="spender")
    assert _chat(client, key, _task(), run="r").status_code == 200  # the step that crosses the cap completes
    r = _chat(client, key, _task(), run="r")
    assert r.status_code == 403 and r.json()["error"]["code"] == "run_spend_cap"
    _, key = _agent(client, {"max_tokens": 5}, name="talker")
    assert _chat(client, key, _task(), run="r").status_code == 200
    r = _chat(client, key, _task(), run="r")
    assert r.status_code == 403 and r.json()["error"]["code"] == "run_token_cap"


def test_a_streamed_step_is_counted_and_a_capped_stream_is_refused_up_front(client: TestClient) -> None:
    _, key = _agent(client, {"max_steps": 1})
    with client.stream(
        "POST", "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"authorization": f"Bearer {key}", "x-interlock-run-id": "s"},
    ) as r:  # fmt: skip
        assert r.status_code == 200 and _events(r)
    r = client.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"authorization": f"Bearer {key}", "x-interlock-run-id": "s"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "run_step_cap"


def test_a_repeated_tool_call_stops_the_run_and_changed_arguments_do_not(client: TestClient) -> None:
    _, key = _agent(client, {})
    looping = _task(*[("search", '{"q": "invoice 7"}')] * 3)
    r = _chat(client, key, looping)
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "run_loop" and "'search' 3 times" in err["message"]
    retries = _task(("search", '{"q": "invoice 7"}'), ("search", '{"q": "invoice #7"}'), ("search", '{"q": "inv 7"}'))
    assert _chat(client, key, retries).status_code == 200
    cycle = _task(("search", '{"q": "a"}'), ("pay", '{"n": 1}'), ("search", '{"q": "a"}'), ("pay", '{"n": 1}'))
    r = _chat(client, key, cycle)
    assert r.json()["error"]["code"] == "run_loop" and "'search' -> 'pay'" in r.json()["error"]["message"]
    (first, *_) = _audit(client, "agent.run_stopped")
    assert json.loads(first.metadata)["code"] == "run_loop"


def test_loop_thresholds_are_per_agent(client: TestClient) -> None:
    _, key = _agent(client, {"loop_repeats": 5, "loop_cycles": 0})
    assert _chat(client, key, _task(*[("search", "{}")] * 4)).status_code == 200
    cycle = _task(("search", "{}"), ("pay", "{}"), ("search", "{}"), ("pay", "{}"))
    assert _chat(client, key, cycle).status_code == 200
    assert _chat(client, key, _task(*[("search", "{}")] * 5)).json()["error"]["code"] == "run_loop"


def test_bad_caps_are_a_400_naming_the_field(client: TestClient) -> None:
    owner = client.post("/admin/owners", json={"name": "Bo", "email": "bo@example.com"}).json()
    r = client.post(
        "/admin/agents",
        json={"name": "x", "owner_id": owner["id"], "description": "d", "caps": {"max_steps": -1}},
    )
    assert r.status_code == 400 and "max_steps" in r.text


def test_a_halt_ends_the_agents_stream_in_flight_with_an_error_event(client: TestClient) -> None:
    _, key = _agent(client, {})
    with client.stream(
        "POST", "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": " ".join(WORDS)}], "stream": True},
        headers={"authorization": f"Bearer {key}", "x-interlock-run-id": "halt-me"},
    ) as r:  # fmt: skip
        assert r.status_code == 200
        events = _events(r)
    text = "".join(c["delta"].get("content") or "" for e in events for c in e.get("choices", []))
    assert text and WORDS[-1] not in text  # some of the answer went out before the halt, not all of it
    assert events[-1]["error"]["code"] == "agent_halted" and "runaway" in events[-1]["error"]["message"]
    (row,) = [row for row in _rows(client) if row.agent_id]
    assert row.status == 403
    assert _chat(client, key, _task()).json()["error"]["code"] == "agent_halted"


def test_a_stream_of_a_caller_that_is_no_agent_is_not_cut(client: TestClient) -> None:
    with client.stream(
        "POST", "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "one two three four five six"}],
              "stream": True},
    ) as r:  # fmt: skip
        events = _events(r)
    assert not any("error" in e for e in events)


def test_spend_velocity_is_judged_per_agent_over_all_its_keys(client: TestClient) -> None:
    agent, key = _agent(client, {})
    state = client.app.state.interlock  # type: ignore[attr-defined]
    now = time.time()
    for i, key_id in enumerate(("key_a", "key_b", "key_c")):  # three credentials, 400 micro-dollars each
        state.store.record_usage(
            UsageRecord(
                f"req_v{i}", now, key_id, "chat", "echo", "fake", "m", False, 1, 1, "provider", 400, "v1", 1.0,
                None, 200, agent_id=agent["id"], owner_id=agent["owner_id"],
            )
        )  # fmt: skip
    client.portal.call(state.store.flush)
    guard = VelocityGuard(state.store, state.keys, state.audit, factor=10, min_micros=1000, suspend=True)
    next_minute = (now // 60 + 1) * 60 + 1
    alerts = client.portal.call(guard.check, next_minute)
    assert [(a.kind, a.key_id, a.spent_micros) for a in alerts] == [("agent", agent["id"], 1200)]
    assert client.portal.call(guard.check, next_minute) == []
    (entry,) = [e for e in _audit(client, "spend.velocity_alert") if e.target == agent["id"]]
    meta = json.loads(entry.metadata)
    assert meta["owner_id"] == agent["owner_id"] and meta["suspended"] is True
    r = _chat(client, key, _task())
    assert r.status_code == 403 and r.json()["error"]["code"] == "agent_suspended"


def test_a_responses_conversation_continued_by_previous_response_id_stays_one_run(client: TestClient) -> None:
    _, key = _agent(client, {"max_steps": 10})
    auth = {"authorization": f"Bearer {key}"}
    first = client.post(
        "/v1/responses", json={"model": "echo", "instructions": "You do tasks.", "input": "find it"}, headers=auth
    )
    assert first.status_code == 200, first.text
    later = client.post(
        "/v1/responses",
        json={
            "model": "echo",
            "instructions": "You do tasks.",  # not carried over by previous_response_id, so clients resend it
            "input": "and then?",
            "previous_response_id": first.json()["id"],
        },
        headers=auth,
    )
    assert later.status_code == 200, later.text
    run = first.headers["x-interlock-run-id"]
    assert run.startswith("auto_") and later.headers["x-interlock-run-id"] == run
    other = client.post(
        "/v1/responses", json={"model": "echo", "instructions": "You do tasks.", "input": "new task"}, headers=auth
    )
    assert other.headers["x-interlock-run-id"] != run


def test_raising_the_cap_lets_a_stopped_run_go_on(client: TestClient) -> None:
    agent, key = _agent(client, {"max_steps": 1})
    assert _chat(client, key, _task(), run="r").status_code == 200
    assert _chat(client, key, _task(), run="r").json()["error"]["code"] == "run_step_cap"
    r = client.put(f"/admin/agents/{agent['id']}/caps", json={"max_steps": 3})
    assert r.status_code == 200, r.text
    assert r.json()["caps"]["max_steps"] == 3
    assert _chat(client, key, _task(), run="r").status_code == 200
    (entry,) = _audit(client, "agent.set_caps")
    assert entry.target == agent["id"] and json.loads(json.loads(entry.metadata)["caps"]) == {"max_steps": 3}
    bad = client.put(f"/admin/agents/{agent['id']}/caps", json={"max_steps": "many"})
    assert bad.status_code == 400 and "max_steps" in bad.text
    assert client.put("/admin/agents/agt_nope/caps", json={}).status_code == 404
    assert (
        client.put(f"/admin/agents/{agent['id']}/caps", json={}, headers={"authorization": f"Bearer {key}"}).status_code
        == 403
    )


def test_a_halt_while_the_model_works_withholds_the_complete_answer(client: TestClient) -> None:
    _, key = _agent(client, {})
    r = _chat(client, key, [{"role": "user", "content": '[[call:pay {"to": "x"}]]'}], run="halt-me")
    assert r.status_code == 403 and r.json()["error"]["code"] == "agent_halted"
    assert "tool_calls" not in r.text
