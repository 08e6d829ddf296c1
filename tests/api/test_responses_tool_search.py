"""`/v1/responses` with a client-run tool search (`tool_search` with `execution: "client"`, as Codex sends it):
the model's search comes back as a `tool_search_call`, and the tools a `tool_search_output` loads are
offered from then on, with the request's deferred ones held back until loaded. Checked against the SDK's
own models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter
from starlette.testclient import TestClient

from interlock.store.records import UsageRecord

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
SEARCH = {
    "type": "tool_search",
    "execution": "client",
    "description": "# Tool discovery\n\nSearches over deferred tool metadata.",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "number"}},
        "required": ["query"],
    },
}
EXEC = {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {}}}
READ = {
    "type": "function",
    "name": "mcp__files__read",
    "description": "Read a file.",
    "defer_loading": True,
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
}


def _sent(client: TestClient) -> Any:
    return client.app.state.interlock.providers["echo"].received[-1]  # type: ignore[attr-defined]


def _post(client: TestClient, **body: Any) -> Any:
    r = client.post("/v1/responses", json={"model": "echo", "tools": [EXEC, SEARCH, READ], **body})
    assert r.status_code == 200, r.text
    return r


def test_a_search_call_then_the_loaded_tool_called(client: TestClient) -> None:
    ask = 'find a file reader [[call:tool_search {"query": "read files", "limit": 3}]]'
    called = Response.model_validate(_post(client, input=ask).json())
    assert [t.function.name for t in _sent(client).tools] == ["exec_command", "tool_search"]  # READ is deferred
    [search] = called.output
    assert search.type == "tool_search_call" and search.execution == "client" and search.status == "completed"
    assert search.arguments == {"query": "read files", "limit": 3} and search.id.startswith("tsc_")
    loaded = {**READ, "defer_loading": False}
    follow = [
        {"role": "user", "content": ask},
        search.model_dump(exclude_none=True),
        {"type": "tool_search_output", "call_id": search.call_id, "execution": "client", "tools": [loaded]},
        {"role": "user", "content": 'now read it [[call:mcp__files__read {"path": "a.txt"}]]'},
    ]
    answered = Response.model_validate(_post(client, input=follow).json())
    sent = _sent(client)
    assert [t.function.name for t in sent.tools] == ["exec_command", "tool_search", "mcp__files__read"]
    assert [m.role for m in sent.messages] == ["user", "assistant", "tool", "user"]
    assert sent.messages[1].tool_calls[0].function.name == "tool_search"
    assert orjson.loads(sent.messages[1].tool_calls[0].function.arguments) == {"query": "read files", "limit": 3}
    assert sent.messages[2].text() == "Tools loaded: mcp__files__read."
    [call] = answered.output
    assert call.type == "function_call" and call.name == "mcp__files__read"
    # A tool loaded that the request did not list at all is offered too.
    other = {"type": "function", "name": "grep", "parameters": {"type": "object"}}
    follow[2] = {**follow[2], "tools": [other]}
    _post(client, input=follow[:3], tool_choice="none")
    assert [t.function.name for t in _sent(client).tools] == ["exec_command", "tool_search", "grep"]


def test_a_streamed_search_call_carries_its_arguments_whole(client: TestClient) -> None:
    ask = 'find [[call:tool_search {"query": "q"}]]'
    with client.stream(
        "POST", "/v1/responses", json={"model": "echo", "tools": [SEARCH], "input": ask, "stream": True}
    ) as r:
        assert r.status_code == 200
        frames = [orjson.loads(line[6:]) for line in r.read().decode().split("\n") if line.startswith("data: ")]
    events = [EVENTS.validate_python(f) for f in frames]
    kinds = [e.type for e in events]
    assert kinds[2:4] == ["response.output_item.added", "response.output_item.done"]
    assert events[3].item.type == "tool_search_call" and events[3].item.arguments == {"query": "q"}
    final = events[-1].response
    assert final.output[0].arguments == {"query": "q"} and final.output[0].status == "completed"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{**SEARCH, "execution": "server"}]}, "tools[0].execution"),
        ({"tools": [{"type": "tool_search"}]}, "tools[0].execution"),  # server is the default
        ({"tools": [SEARCH, {**SEARCH}]}, "tools[1].type"),
        ({"input": [{"type": "tool_search_output", "call_id": "c", "tools": {"a": 1}}]}, "input[0].tools"),
        (
            {"input": [{"type": "tool_search_output", "call_id": "c", "tools": [{"type": "web_search"}]}]},
            "input[0].tools[0].type",
        ),
        (
            {"input": [{"type": "tool_search_output", "call_id": "c", "tools": [{**EXEC, "name": "a b"}]}]},
            "input[0].tools[0].name",
        ),
        (None, "input[0].arguments"),  # arguments nested deeper than any request may nest
        ({"input": [{"type": "tool_search_call", "arguments": {}}]}, "input[0].call_id"),
    ],
)
def test_bad_searches_are_400_naming_the_field(
    client: TestClient, ledger: Callable[[], list[UsageRecord]], body: dict[str, Any] | None, param: str
) -> None:
    if body is None:
        deep: Any = {}
        for _ in range(200):
            deep = {"a": deep}
        body = {"input": [{"type": "tool_search_call", "call_id": "c", "arguments": deep}]}
    r = client.post("/v1/responses", json={"model": "echo", "input": "hi", "tools": [SEARCH], **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.json()
    assert [(row.endpoint, row.status) for row in ledger()] == [("responses", 400)]  # settled once


def test_a_loaded_namespace_offers_only_what_the_model_may_call_itself(client: TestClient) -> None:
    namespace = {
        "type": "namespace",
        "name": "mcp__files",
        "description": "Files.",
        "tools": [
            {**READ, "name": "read", "allowed_callers": ["direct"], "output_schema": {"type": "string"}},
            {**READ, "name": "stat", "allowed_callers": ["programmatic"]},  # only code the provider runs
        ],
    }
    loaded = {"type": "tool_search_output", "call_id": "c1", "execution": "client", "tools": [namespace]}
    search = {"type": "tool_search_call", "call_id": "c1", "execution": "client", "arguments": {"query": "f"}}
    r = client.post(
        "/v1/responses",
        json={"model": "echo", "tools": [EXEC, SEARCH], "input": ["go", search, loaded], "tool_choice": "none"},
    )
    assert r.status_code == 200, r.text
    assert [t.function.name for t in _sent(client).tools] == ["exec_command", "tool_search", "mcp__files__read"]
    assert _sent(client).messages[2].text() == "Tools loaded: mcp__files."
