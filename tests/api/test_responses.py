"""`/v1/responses` in-process: OpenAI's Responses API on the chat pipeline, checked against the SDK's own models."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter
from starlette.testclient import TestClient

from interlock.store.records import UsageRecord
from interlock.translate.responses import parse_request, to_chat_request
from interlock.translate.responses_output import skeleton
from interlock.translate.responses_stream import ResponsesStreamWriter
from interlock.types import ChatChunk

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _create(client: TestClient, headers: dict[str, str] | None = None, **body: Any) -> Response:
    r = client.post("/v1/responses", json={"model": "echo", **body}, headers=headers)
    assert r.status_code == 200, r.text
    return Response.model_validate(r.json())


def _events(text: str) -> list[Any]:
    """The SSE body as the SDK's typed events, checking each `event:` name against its `type`."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = orjson.loads(lines["data"])
        assert lines["event"] == data["type"]
        events.append(EVENTS.validate_python(data))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    return events


def _key(client: TestClient, name: str) -> dict[str, str]:
    r = client.post("/admin/keys", json={"name": name})
    assert r.status_code == 201, r.text
    return {"authorization": f"Bearer {r.json()['key']}"}


def test_plain_text_is_a_valid_response_with_one_ledger_row(
    client: TestClient, ledger: Callable[[], list[UsageRecord]]
) -> None:
    r = _create(client, input="hello there", metadata={"app": "tests"}, temperature=0.5, top_p=0.9)
    assert r.status == "completed" and r.object == "response" and r.id.startswith("resp_")
    assert r.output_text == "echo: hello there"
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (2, 3, 5)
    assert r.metadata == {"app": "tests"} and r.temperature == 0.5 and r.top_p == 0.9
    rows = ledger()
    assert len(rows) == 1
    row = rows[0]
    assert (row.endpoint, row.alias, row.status, row.prompt_tokens, row.completion_tokens) == (
        "responses",
        "echo",
        200,
        2,
        3,
    )
    assert row.request_id.removeprefix("req_") == r.id.removeprefix("resp_")


def test_instructions_become_a_system_message(client: TestClient) -> None:
    r = _create(
        client,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        instructions="be very brief",
    )
    assert r.instructions == "be very brief"
    assert r.usage is not None and r.usage.input_tokens == 4  # the fake counts the words of every message
    chat = to_chat_request(parse_request({"model": "m", "input": "hi", "instructions": "be brief"}))
    assert [(m.role, m.text()) for m in chat.messages] == [("system", "be brief"), ("user", "hi")]


def test_function_tools_give_a_function_call_item(client: TestClient) -> None:
    r = _create(client, input="weather in Paris?", tools=[WEATHER], tool_choice="auto")
    assert r.status == "completed"
    [item] = r.output
    assert item.type == "function_call"
    assert item.name == "get_weather" and item.arguments == '{"echo": true}' and item.call_id.startswith("call_")
    assert r.tools[0].type == "function" and r.tools[0].name == "get_weather"
    forced = _create(client, input="x", tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"})
    assert forced.output[0].type == "function_call"
    assert _create(client, input="x", tools=[WEATHER], tool_choice="none").output_text == "echo: x"


def test_function_call_output_follow_up(client: TestClient) -> None:
    first = _create(client, input="weather in Paris?", tools=[WEATHER])
    call = first.output[0]
    assert call.type == "function_call"
    items = [
        {"role": "user", "content": "weather in Paris?"},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny and warm today"},
    ]
    r = _create(client, input=items)
    # The fake echoes the last user turn and counts words of every message: 3 (user) + 4 (tool output).
    assert r.output_text == "echo: weather in Paris?"
    assert r.usage is not None and r.usage.input_tokens == 7
    chat = to_chat_request(parse_request({"model": "m", "input": items, "tools": [WEATHER]}))
    assert [m.role for m in chat.messages] == ["user", "assistant", "tool"]
    assert chat.messages[1].tool_calls and chat.messages[1].tool_calls[0].id == call.call_id
    assert chat.messages[2].tool_call_id == call.call_id and chat.messages[2].text() == "sunny and warm today"
    assert chat.tools and chat.tools[0].function.name == "get_weather"


def test_json_schema_and_json_object_formats(client: TestClient) -> None:
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}
    fmt = {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
    r = _create(client, input="give json", text={"format": fmt})
    assert orjson.loads(r.output_text) == {"echo": "give json"}
    assert r.text is not None and r.text.format is not None and r.text.format.type == "json_schema"
    chat = to_chat_request(parse_request({"model": "m", "input": "x", "text": {"format": fmt}}))
    assert chat.response_format is not None and chat.response_format.json_schema is not None
    assert chat.response_format.json_schema.name == "answer" and chat.response_format.json_schema.schema_ == schema
    r = _create(client, input="any json", text={"format": {"type": "json_object"}})
    assert orjson.loads(r.output_text) == {"echo": "any json"}


def test_max_output_tokens_marks_the_response_incomplete(client: TestClient) -> None:
    r = _create(client, input="one two three four five", max_output_tokens=2)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens" and r.max_output_tokens == 2
    assert r.output_text == "echo: one"


def test_stream_event_order_and_final_usage(client: TestClient, ledger: Callable[[], list[UsageRecord]]) -> None:
    r = client.post("/v1/responses", json={"model": "echo", "input": "hi there", "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.text)
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "echo: hi there"
    final = events[-1].response
    assert final.status == "completed" and final.output_text == "echo: hi there"
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (2, 3)
    [row] = ledger()
    assert (row.endpoint, row.stream, row.status, row.completion_tokens) == ("responses", True, 200, 3)


def test_streamed_function_call(client: TestClient) -> None:
    r = client.post("/v1/responses", json={"model": "echo", "input": "x", "tools": [WEATHER], "stream": True})
    events = _events(r.text)
    types = [e.type for e in events]
    assert types[2:] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[4].arguments == '{"echo": true}'
    item = events[-1].response.output[0]
    assert item.type == "function_call" and item.name == "get_weather" and item.arguments == '{"echo": true}'


def test_failure_mid_stream_ends_with_response_failed(
    client: TestClient, ledger: Callable[[], list[UsageRecord]]
) -> None:
    r = client.post("/v1/responses", json={"model": "echo", "input": "a b c [[fail-mid]]", "stream": True})
    events = _events(r.text)
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed" and events[-1].response.error is not None
    assert "response.completed" not in [e.type for e in events]
    [row] = ledger()
    assert row.endpoint == "responses" and row.status == 502


def test_a_failure_before_the_first_byte_is_an_error_status(client: TestClient) -> None:
    r = client.post("/v1/responses", json={"model": "echo", "input": "[[fail]]", "stream": True})
    assert r.status_code == 502 and r.json()["error"]["type"] == "upstream_error"


LONG = "x" * 100_000


def _deep(n: int) -> Any:
    value: Any = "x"
    for _ in range(n):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi", "model": ""}, "model"),
        ({"model": "echo"}, "input"),
        ({"model": "echo", "input": 5}, "input"),
        ({"model": "echo", "input": []}, "input"),
        ({"model": "echo", "input": [5]}, "input[0]"),
        ({"model": "echo", "input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
        (
            {"model": "echo", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"model": "echo", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"model": "echo", "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
        ),
        ({"model": "echo", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"model": "echo", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
        (
            {"model": "echo", "input": [{"type": "function_call_output", "call_id": "c", "output": 3}]},
            "input[0].output",
        ),
        ({"model": "echo", "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "echo", "input": "hi", "tools": [{"type": "function", "name": "has space"}]}, "tools[0].name"),
        ({"model": "echo", "input": "hi", "tools": ["nope"]}, "tools[0].type"),
        ({"model": "echo", "input": "hi", "tool_choice": "required"}, "tool_choice"),
        (
            {"model": "echo", "input": "hi", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "x"}},
            "tool_choice.name",
        ),
        ({"model": "echo", "input": "hi", "tool_choice": {"type": "web_search_preview"}}, "tool_choice.type"),
        (
            {"model": "echo", "input": "hi", "text": {"format": {"type": "json_schema", "name": "a"}}},
            "text.format.schema",
        ),
        ({"model": "echo", "input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"model": "echo", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "echo", "input": "hi", "max_output_tokens": "many"}, "max_output_tokens"),
        ({"model": "echo", "input": "hi", "temperature": 9}, "temperature"),
        ({"model": "echo", "input": "hi", "metadata": {"k": 1}}, "metadata.k"),
        ({"model": "echo", "input": "hi", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"model": "echo", "input": "hi", "reasoning": {"effort": "huge"}}, "reasoning.effort"),
        ({"model": "echo", "input": "hi", "background": True}, "background"),
        ({"model": "echo", "input": "hi", "include": ["file_search_call.results"]}, "include.0"),
        ({"model": "echo", "input": "hi", "frobnicate": 1}, "frobnicate"),
        ({"model": "echo", "input": "hi", "stream": "yes"}, "stream"),
        ({"model": "echo", "input": "hi", "store": 1}, "store"),
        ({"model": "echo", "input": "hi", "max_output_tokens": True}, "max_output_tokens"),
        ({"model": "echo", "input": "hi", "temperature": False}, "temperature"),
        ({"model": "echo", "input": "hi", "previous_response_id": LONG}, "previous_response_id"),
        ({"model": LONG, "input": "hi"}, "model"),
        ({"model": "echo", "input": [{"role": "user", "content": _deep(200)}]}, "input[0].content[0]"),
        ({"model": "echo", "input": "hi", "instructions": {"nested": _deep(200)}}, "instructions"),
        (
            {"model": "echo", "input": "hi", "tools": [{**WEATHER, "parameters": {"a": _deep(300)}}]},
            "tools[0].parameters",
        ),
        (
            {
                "model": "echo",
                "input": "hi",
                "text": {"format": {"type": "json_schema", "name": "a", "schema": {"a": _deep(300)}}},
            },
            "text.format.schema",
        ),
    ],
)
def test_hostile_bodies_are_400_naming_the_field(
    client: TestClient, ledger: Callable[[], list[UsageRecord]], body: dict[str, Any], param: str
) -> None:
    r = client.post("/v1/responses", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param, err
    assert err["type"] == "invalid_request_error" and err["message"]
    [row] = ledger()
    assert (row.endpoint, row.status) == ("responses", 400)


def test_unknown_model_is_404_and_settled(client: TestClient, ledger: Callable[[], list[UsageRecord]]) -> None:
    r = client.post("/v1/responses", json={"model": "nope", "input": "hi"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"
    assert [(row.endpoint, row.status) for row in ledger()] == [("responses", 404)]


def test_previous_response_id_continues_the_conversation(client: TestClient) -> None:
    first = _create(client, input="one two", instructions="short")
    second = _create(client, input="three", previous_response_id=first.id)
    # Stored turn (2 + 3 words) + this input (1); the first turn's instructions are not carried over.
    assert second.usage is not None and second.usage.input_tokens == 6
    assert second.previous_response_id == first.id and second.instructions is None
    third = _create(client, input="four", previous_response_id=second.id, stream=False)
    assert third.usage is not None and third.usage.input_tokens == 6 + 2 + 1
    got = client.get(f"/v1/responses/{first.id}")
    assert got.status_code == 200 and Response.model_validate(got.json()).output_text == "echo: one two"


def test_streamed_responses_are_stored_too(client: TestClient) -> None:
    r = client.post("/v1/responses", json={"model": "echo", "input": "one two", "stream": True})
    rid = _events(r.text)[-1].response.id
    follow = _create(client, input="three", previous_response_id=rid)
    assert follow.usage is not None and follow.usage.input_tokens == 6
    assert Response.model_validate(client.get(f"/v1/responses/{rid}").json()).output_text == "echo: one two"


def test_responses_belong_to_their_key(client: TestClient) -> None:
    alice, bob = _key(client, "alice"), _key(client, "bob")
    mine = _create(client, headers=alice, input="secret plans")
    assert client.get(f"/v1/responses/{mine.id}", headers=alice).status_code == 200
    assert client.get(f"/v1/responses/{mine.id}", headers=bob).status_code == 404
    assert client.get(f"/v1/responses/{mine.id}").status_code == 404  # the admin key is another owner too
    r = client.post("/v1/responses", json={"model": "echo", "input": "x", "previous_response_id": mine.id}, headers=bob)
    assert r.status_code == 404 and r.json()["error"]["param"] == "previous_response_id"
    assert client.delete(f"/v1/responses/{mine.id}", headers=bob).status_code == 404
    assert client.get(f"/v1/responses/{mine.id}", headers=alice).status_code == 200
    assert client.get(f"/v1/responses/{mine.id}", headers={"authorization": "Bearer sk-il-nope"}).status_code == 401


def test_store_false_stores_nothing(client: TestClient) -> None:
    r = _create(client, input="forget me", store=False)
    assert r.store is False
    assert client.get(f"/v1/responses/{r.id}").status_code == 404
    follow = client.post("/v1/responses", json={"model": "echo", "input": "x", "previous_response_id": r.id})
    assert follow.status_code == 404


def test_delete(client: TestClient) -> None:
    r = _create(client, input="hi")
    deleted = client.delete(f"/v1/responses/{r.id}")
    assert deleted.status_code == 200 and deleted.json() == {"id": r.id, "object": "response", "deleted": True}
    assert client.get(f"/v1/responses/{r.id}").status_code == 404
    assert client.delete(f"/v1/responses/{r.id}").status_code == 404
    follow = client.post("/v1/responses", json={"model": "echo", "input": "x", "previous_response_id": r.id})
    assert follow.status_code == 404


def test_responses_expire_after_the_retention_period(client: TestClient) -> None:
    r = _create(client, input="hi")
    store = client.app.state.interlock.store  # type: ignore[attr-defined]
    retention = client.app.state.interlock.settings.responses.retention_s  # type: ignore[attr-defined]
    assert retention == 30 * 86_400
    assert client.portal.call(store.get_response, r.id, "admin", time.time()) is not None  # type: ignore[union-attr]
    later = time.time() + retention + 1
    assert client.portal.call(store.get_response, r.id, "admin", later) is None  # type: ignore[union-attr]


def test_stream_writer_keeps_two_tool_calls_apart() -> None:
    req = parse_request({"model": "m", "input": "x", "tools": [WEATHER]})
    writer = ResponsesStreamWriter(skeleton(req, "resp_1", 1))

    def chunk(index: int, **function: str) -> ChatChunk:
        call: dict[str, Any] = {"index": index, "function": function}
        if "name" in function:
            call["id"] = f"call_{index}"
        delta = {"tool_calls": [call]}
        return ChatChunk.model_validate({"id": "c", "created": 1, "model": "m", "choices": [{"delta": delta}]})

    events = writer.start()
    for c in (chunk(0, name="get_weather", arguments='{"city":'), chunk(0, arguments='"Paris"}')):
        events += writer.feed(c)
    events += writer.feed(chunk(1, name="get_weather", arguments='{"city": "Oslo"}'))
    events += writer.finish()
    typed = [EVENTS.validate_python(data) for _, data in events]
    assert [e.sequence_number for e in typed] == list(range(len(typed)))
    assert [e.type for e in typed].count("response.output_item.done") == 2
    final = Response.model_validate(writer.response)
    assert [(i.type, i.call_id, i.arguments) for i in final.output] == [  # type: ignore[union-attr]
        ("function_call", "call_0", '{"city":"Paris"}'),
        ("function_call", "call_1", '{"city": "Oslo"}'),
    ]
    assert [e.output_index for e in typed if e.type == "response.output_item.added"] == [0, 1]


AGENTS = {
    "type": "namespace",
    "name": "agents_v1",
    "description": "Sub-agents.",
    "tools": [
        {"type": "function", "name": "spawn", "description": "Start one.", "parameters": {"type": "object"}},
        {"type": "function", "name": "close", "parameters": {"type": "object"}},
    ],
}


def test_namespace_tools_reach_the_model_flat_and_their_calls_come_back_namespaced(client: TestClient) -> None:
    called = _create(client, input="go", tools=[AGENTS, WEATHER])
    sent = client.app.state.interlock.providers["echo"].received[-1]  # type: ignore[attr-defined]
    assert [t.function.name for t in sent.tools] == ["agents_v1__spawn", "agents_v1__close", "get_weather"]
    assert sent.tools[0].function.description == "Sub-agents. Start one."
    [call] = called.output
    assert call.type == "function_call" and (call.name, call.namespace) == ("spawn", "agents_v1")
    assert called.tools[0].type == "namespace"  # echoed as sent
    # The call and its output sent back, as an agent loop that keeps its own context does:
    back = [
        {"role": "user", "content": "go"},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "started"},
    ]
    _create(client, input=back, tools=[AGENTS], tool_choice="none")
    sent = client.app.state.interlock.providers["echo"].received[-1]  # type: ignore[attr-defined]
    assert [c.function.name for c in sent.messages[1].tool_calls] == ["agents_v1__spawn"]
    # A stored turn continues with the chat name too.
    _create(client, input="and?", previous_response_id=called.id, tools=[AGENTS], tool_choice="none")
    sent = client.app.state.interlock.providers["echo"].received[-1]  # type: ignore[attr-defined]
    assert [c.function.name for c in sent.messages[1].tool_calls] == ["agents_v1__spawn"]
    forced = _create(
        client, input="go", tools=[AGENTS], tool_choice={"type": "function", "name": "close", "namespace": "agents_v1"}
    )
    sent = client.app.state.interlock.providers["echo"].received[-1]  # type: ignore[attr-defined]
    assert sent.tool_choice.function == {"name": "agents_v1__close"} and forced.output[0].type == "function_call"


def test_a_streamed_namespaced_call_names_its_namespace(client: TestClient) -> None:
    body = {"model": "echo", "input": "go", "tools": [AGENTS], "stream": True}
    with client.stream("POST", "/v1/responses", json=body) as r:
        events = _events(r.read().decode())
    [added] = [e for e in events if e.type == "response.output_item.added"]
    assert (added.item.name, added.item.namespace) == ("spawn", "agents_v1")
    [call] = events[-1].response.output
    assert (call.name, call.namespace, call.status) == ("spawn", "agents_v1", "completed")


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ([AGENTS, {**WEATHER, "name": "agents_v1__spawn"}], "tools[1].name"),
        ([{**AGENTS, "tools": []}], "tools[0].tools"),
        ([{**AGENTS, "name": "a" * 60}], "tools[0].tools[0].name"),
        ([{**AGENTS, "tools": [{"type": "shell", "name": "x"}]}], "tools[0].tools.0"),
        (
            [{**AGENTS, "tools": [{"type": "custom", "name": "x", "format": {"type": "grammar"}}]}],
            "tools[0].tools.0.custom.format.grammar.syntax",
        ),
        ([{"type": "web_search", "external_web_access": False}], "tools[0].type"),
    ],
)
def test_bad_namespaces_are_400_naming_the_tool(
    client: TestClient, ledger: Callable[[], list[UsageRecord]], tools: list[Any], param: str
) -> None:
    r = client.post("/v1/responses", json={"model": "echo", "input": "hi", "tools": tools})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.json()
    assert [(row.endpoint, row.status) for row in ledger()] == [("responses", 400)]  # settled once


def test_a_namespaced_custom_tool_streams_its_input_whole_even_when_resumed() -> None:
    edit = {"type": "custom", "name": "edit", "description": "Edit a file."}
    namespace = {"type": "namespace", "name": "files", "description": "Files.", "tools": [edit]}
    req = parse_request({"model": "m", "input": "x", "tools": [namespace, WEATHER]})
    chat = to_chat_request(req)
    assert chat.tools is not None and chat.tools[0].function.name == "files__edit"
    assert chat.tools[0].function.description == "Files. Edit a file.\n\nCall it with one argument, `input`: free text"
    writer = ResponsesStreamWriter(skeleton(req, "resp_1", 1), chat.names)

    def chunk(index: int, **function: str) -> ChatChunk:
        call: dict[str, Any] = {"index": index, "function": function}
        if "name" in function:
            call["id"] = f"call_{index}"
        return ChatChunk.model_validate(
            {"id": "c", "created": 1, "model": "m", "choices": [{"delta": {"tool_calls": [call]}}]}
        )

    events = writer.start()
    events += writer.feed(chunk(0, name="files__edit", arguments='{"input": "line \\"1'))
    events += writer.feed(chunk(1, name="get_weather", arguments='{"city": "Oslo"}'))
    events += writer.feed(chunk(0, arguments='\\nline 2\\""}'))  # the custom call resumes after the other began
    events += writer.finish()
    typed = [EVENTS.validate_python(data) for _, data in events]
    [delta] = [e for e in typed if e.type == "response.custom_tool_call_input.delta"]
    [done] = [e for e in typed if e.type == "response.custom_tool_call_input.done"]
    # The events carry what had come when the next call began (as a function call's `.done` does: chat
    # upstreams finish one call before the next, so this is rare); the final object has all of it.
    assert delta.delta == done.input == '{"input": "line \\"1'
    final = Response.model_validate(writer.response)
    custom, function = final.output
    assert custom.type == "custom_tool_call" and (custom.name, custom.namespace) == ("edit", "files")
    assert custom.input == 'line "1\nline 2"' and custom.id is not None and custom.id.startswith("ctc_")
    assert function.type == "function_call" and function.arguments == '{"city": "Oslo"}'


def test_client_metadata_is_accepted(client: TestClient) -> None:
    assert _create(client, input="hi", client_metadata={"thread_id": "t1", "turn_id": "u1"}).output_text == "echo: hi"
    r = client.post("/v1/responses", json={"model": "echo", "input": "hi", "client_metadata": {"k": 1}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "client_metadata.k"
