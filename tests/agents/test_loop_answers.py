"""A tool call in a model's answer that would complete a loop is removed from the answer, through the real app.

The fake provider answers with the calls that `[[call:NAME {json}]]` markers in the newest message ask for,
so the conversation's history (its assistant turns) and the answer's calls are both scripted here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.agents.helpers import admin_client

TOOLS = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in ("search", "pay")]
SEARCH = '{"q": "invoice 7"}'


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with admin_client(tmp_path, monkeypatch) as c:
        yield c


def _agent(client: TestClient, caps: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    owner = client.post("/admin/owners", json={"name": "Ann Owner", "email": "ann@example.com"})
    assert owner.status_code == 201, owner.text
    r = client.post(
        "/admin/agents",
        json={"name": "loop-bot", "owner_id": owner.json()["id"], "description": "finds invoices", "caps": caps or {}},
    )
    assert r.status_code == 201, r.text
    return r.json(), r.json()["key"]


def _task(history: list[tuple[str, str]], answer: str) -> list[dict[str, Any]]:
    """A task whose assistant turns made the `history` calls; the last tool result scripts the answer."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You find invoices."},
        {"role": "user", "content": "find invoice 7"},
    ]
    for i, (name, args) in enumerate(history):
        call = {"id": f"c{i}", "type": "function", "function": {"name": name, "arguments": args}}
        messages.append({"role": "assistant", "tool_calls": [call]})
        last = i == len(history) - 1
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": answer if last else "nothing yet"})
    return messages


def _chat(client: TestClient, key: str, messages: list[dict[str, Any]], **extra: Any) -> Any:
    return client.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": messages, "tools": TOOLS, **extra},
        headers={"authorization": f"Bearer {key}"},
    )


def _audit(client: TestClient, action: str, where: Any = lambda m: True) -> list[dict[str, Any]]:
    audit = client.app.state.interlock.audit  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while True:
        found = [json.loads(e.metadata) for e in client.portal.call(audit.recent, 200) if e.action == action]
        found = [m for m in found if where(m)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_the_third_identical_call_is_removed_from_a_plain_answer(client: TestClient) -> None:
    agent, key = _agent(client)
    r = _chat(client, key, _task([("search", SEARCH)] * 2, f"[[call:search {SEARCH}]]"))
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop" and not choice["message"].get("tool_calls")
    content = choice["message"]["content"]
    assert "'search'" in content and "repeat itself" in content and "run_loop" in content
    assert "3 times" in content and "invoice 7" not in content  # names, never argument values
    (entry,) = _audit(client, "agent.tool_call", lambda m: m["verdict"] == "run_loop")
    assert entry["agent_id"] == agent["id"] and entry["tool"] == "search" and len(entry["args_sha256"]) == 64


def test_changed_arguments_and_the_second_identical_call_pass(client: TestClient) -> None:
    _, key = _agent(client)
    changed = _chat(client, key, _task([("search", SEARCH)] * 2, '[[call:search {"q": "invoice #7"}]]'))
    assert changed.json()["choices"][0]["finish_reason"] == "tool_calls"
    second = _chat(client, key, _task([("search", SEARCH)], f"[[call:search {SEARCH}]]"))
    assert second.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "search"


def test_only_the_looping_call_of_several_is_removed_and_a_cycle_counts(client: TestClient) -> None:
    _, key = _agent(client)
    # search, search, then [search (the third: removed), pay (passes)]
    r = _chat(client, key, _task([("search", SEARCH)] * 2, f'[[call:search {SEARCH}]] [[call:pay {{"n": 1}}]]'))
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert [c["function"]["name"] for c in choice["message"]["tool_calls"]] == ["pay"]
    assert "'search'" in choice["message"]["content"]
    # search, pay, search, then pay: the second round of the cycle
    cycle = _task([("search", SEARCH), ("pay", "{}"), ("search", SEARCH)], "[[call:pay {}]]")
    choice = _chat(client, key, cycle).json()["choices"][0]
    assert choice["finish_reason"] == "stop" and "'search' -> 'pay'" in choice["message"]["content"]


def test_the_loop_thresholds_of_the_agent_apply(client: TestClient) -> None:
    _, key = _agent(client, {"loop_repeats": 0, "loop_cycles": 0})
    r = _chat(client, key, _task([("search", SEARCH)] * 2, f"[[call:search {SEARCH}]]"))
    assert r.json()["choices"][0]["finish_reason"] == "tool_calls"  # the loop breaker is off


def test_the_looping_call_is_removed_from_a_streamed_answer(client: TestClient) -> None:
    _, key = _agent(client)
    body = {
        "model": "echo",
        "messages": _task([("search", SEARCH)] * 2, f"[[call:search {SEARCH}]]"),
        "tools": TOOLS,
        "stream": True,
    }
    with client.stream(
        "POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    ) as r:  # fmt: skip
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    choices = [c for line in lines[:-1] for c in json.loads(line[6:]).get("choices", [])]
    assert not any(c["delta"].get("tool_calls") for c in choices)
    text = "".join(c["delta"].get("content") or "" for c in choices)
    assert "'search'" in text and "run_loop" in text
    assert [c["finish_reason"] for c in choices if c.get("finish_reason")] == ["stop"]


def test_the_next_request_that_ends_in_the_loop_is_still_stopped(client: TestClient) -> None:
    _, key = _agent(client)
    r = _chat(client, key, _task([("search", SEARCH)] * 3, "done"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "run_loop"


def test_the_looping_call_is_removed_on_the_anthropic_messages_api(client: TestClient) -> None:
    _, key = _agent(client)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "find invoice 7"}]
    for i in range(2):
        use = {"type": "tool_use", "id": f"t{i}", "name": "search", "input": {"q": "invoice 7"}}
        content = f"[[call:search {SEARCH}]]" if i == 1 else "nothing yet"
        messages += [
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": content}]},
        ]
    r = client.post(
        "/v1/messages",
        json={
            "model": "echo",
            "max_tokens": 100,
            "messages": messages,
            "tools": [{"name": "search", "input_schema": {"type": "object"}}],
        },
        headers={"authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stop_reason"] == "end_turn" and all(b["type"] != "tool_use" for b in body["content"])
    assert any(b["type"] == "text" and "run_loop" in b["text"] for b in body["content"])


def test_the_looping_call_is_removed_on_the_responses_api(client: TestClient) -> None:
    _, key = _agent(client)
    items: list[dict[str, Any]] = [{"role": "user", "content": "find invoice 7"}]
    for i in range(2):
        output = f"[[call:search {SEARCH}]]" if i == 1 else "nothing yet"
        items += [
            {"type": "function_call", "call_id": f"f{i}", "name": "search", "arguments": SEARCH},
            {"type": "function_call_output", "call_id": f"f{i}", "output": output},
        ]
    tools = [{"type": "function", "name": "search", "parameters": {"type": "object"}}]
    r = client.post(
        "/v1/responses",
        json={"model": "echo", "input": items, "tools": tools},
        headers={"authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.text
    output = r.json()["output"]
    assert all(o["type"] != "function_call" for o in output)
    assert "run_loop" in json.dumps(output)
