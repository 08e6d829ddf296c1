"""`responses_api = "native"`: `/v1/responses` served by the upstream's own `/v1/responses`, over a real socket.

The gateway runs in-process; the stub upstream is a subprocess that records what it received, so each
test checks both what the client got (through the official SDK) and what the upstream was sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai.types.responses import Response
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import ConfigError, load_settings
from interlock.store.records import UsageRecord
from tests.api.sdk import in_process_sdk
from tests.conftest import ADMIN_KEY

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
FAULTS = ("nousage", "500", "429", "cut", "failed", "badjson", "burst", "reasoning")
CONFIG = """
[routing]
retries = 0

[store]
flush_interval_ms = 5

[models.native]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub"
responses_api = "native"
price_input_per_mtok = 1
price_output_per_mtok = 2

[models.translated]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub-nousage"
""" + "".join(
    f"""
[models.native-{f}]
provider = "openai_compatible"
base_url = "{{stub}}/v1"
model = "stub-{f}"
responses_api = "native"
"""
    for f in FAULTS
)


@pytest.fixture
def stub(stub_upstream: str) -> str:
    return stub_upstream


@pytest.fixture
def app(tmp_path: Path, stub: str) -> Iterator[TestClient]:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(stub=stub))
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client


@pytest.fixture
def rows(app: TestClient) -> Callable[[], list[UsageRecord]]:
    def read() -> list[UsageRecord]:
        store = app.app.state.interlock.store  # type: ignore[attr-defined]
        app.portal.call(store.flush)  # type: ignore[union-attr]
        return app.portal.call(store.usage_rows)  # type: ignore[union-attr,no-any-return]

    return read


def _received(stub: str, marker: str) -> list[dict[str, Any]]:
    """What the stub was sent whose body mentions `marker`, oldest first."""
    data = httpx.get(f"{stub}/stub/received", timeout=5).json()["data"]
    return [r for r in data if marker in orjson.dumps(r["body"]).decode()]


def _marker() -> str:
    return f"m-{uuid.uuid4().hex[:12]}"


def test_plain_goes_to_the_upstream_responses_api_with_store_false(
    app: TestClient, stub: str, rows: Callable[[], list[UsageRecord]]
) -> None:
    mark = _marker()
    sdk = in_process_sdk(app)
    r = sdk.responses.create(model="native", input=mark, instructions="be nice", max_output_tokens=50, metadata={})
    assert r.output_text == "Hello from the stub upstream." and r.status == "completed"
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens) == (12, 6)
    assert r.id.startswith("resp_") and r.id != "resp_stub"  # the gateway's id: its store keeps it
    [sent] = _received(stub, mark)
    assert sent["path"] == "/v1/responses"
    body = sent["body"]
    assert body["store"] is False and body["model"] == "stub" and "stream" not in body
    assert body["instructions"] == "be nice" and body["max_output_tokens"] == 50
    assert body["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": mark}]}]
    [row] = rows()
    assert (row.endpoint, row.alias, row.status, row.prompt_tokens, row.completion_tokens) == (
        "responses",
        "native",
        200,
        12,
        6,
    )
    assert row.usage_source == "provider"


def test_store_false_is_sent_even_when_the_client_stores(app: TestClient, stub: str) -> None:
    """Interlock keeps the store: a follow-up sends the whole conversation again, never an upstream id."""
    mark = _marker()
    sdk = in_process_sdk(app)
    first = sdk.responses.create(model="native", input=mark)
    second = sdk.responses.create(model="native", input="and then?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    sent = [r["body"] for r in _received(stub, mark)]
    assert len(sent) == 2 and all(b["store"] is False and "previous_response_id" not in b for b in sent)
    assert [i["role"] for i in sent[1]["input"]] == ["user", "assistant", "user"]
    assert sent[1]["input"][1]["content"][0] == {
        "type": "output_text",
        "text": "Hello from the stub upstream.",
        "annotations": [],
    }


def test_streamed_through_the_upstream_event_stream(
    app: TestClient, stub: str, rows: Callable[[], list[UsageRecord]]
) -> None:
    mark = _marker()
    sdk = in_process_sdk(app)
    with sdk.responses.stream(model="native", input=mark) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == final.output_text
    assert final.output_text == "Hello from the stub upstream."
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (12, 6)
    [sent] = _received(stub, mark)
    assert sent["path"] == "/v1/responses" and sent["body"]["stream"] is True and sent["body"]["store"] is False
    [row] = rows()
    assert (row.endpoint, row.stream, row.status, row.prompt_tokens, row.completion_tokens) == (
        "responses",
        True,
        200,
        12,
        6,
    )


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_effort_goes_upstream_and_reasoning_items_come_back(app: TestClient, stub: str, stream: bool) -> None:
    mark = _marker()
    sdk = in_process_sdk(app)
    body: dict[str, Any] = {"model": "native-reasoning", "input": mark, "reasoning": {"effort": "low"}}
    if stream:
        with sdk.responses.stream(**body) as s:
            events = list(s)
            r: Response = s.get_final_response()
        deltas = [e.delta for e in events if e.type == "response.reasoning_text.delta"]
        assert "".join(deltas) == "The user greets me; I greet them back."
    else:
        r = sdk.responses.create(**body)
    reasoning, message = r.output
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "The user greets me; I greet them back."
    assert message.type == "message" and r.output_text == "Hello from the stub upstream."
    [sent] = _received(stub, mark)
    assert sent["body"]["reasoning"] == {"effort": "low"}


@pytest.mark.parametrize("stream", [False, True])
def test_function_calls_and_their_outputs(app: TestClient, stub: str, stream: bool) -> None:
    mark = _marker()
    sdk = in_process_sdk(app)
    body: dict[str, Any] = {"model": "native", "input": mark, "tools": [WEATHER], "tool_choice": "required"}
    if stream:
        with sdk.responses.stream(**body) as s:
            list(s)
            called: Response = s.get_final_response()
    else:
        called = sdk.responses.create(**body)
    [call] = called.output
    assert call.type == "function_call" and call.name == "get_weather" and call.arguments == '{"city": "Paris"}'
    assert call.call_id == "call_stub"
    answered = sdk.responses.create(
        model="native",
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",
    )
    assert answered.output_text == "Hello from the stub upstream."
    first, second = (r["body"] for r in _received(stub, mark))
    assert first["tools"] == [{"type": "function", **WEATHER}] and first["tool_choice"] == "required"
    assert second["input"][1:] == [
        {"type": "function_call", "call_id": "call_stub", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_stub", "output": "sunny"},
    ]


def test_text_format_and_incomplete(app: TestClient, stub: str) -> None:
    mark = _marker()
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
    r = app.post(
        "/v1/responses", json={"model": "native", "input": mark, "text": {"format": fmt}, "max_output_tokens": 2}
    )
    got = Response.model_validate(r.json())
    assert got.status == "incomplete" and got.incomplete_details is not None
    assert got.incomplete_details.reason == "max_output_tokens" and got.output_text == "Hello from"
    [sent] = _received(stub, mark)
    assert sent["body"]["text"] == {"format": fmt} and sent["body"]["max_output_tokens"] == 2


def test_chat_completions_to_a_native_deployment_stay_chat(app: TestClient, stub: str) -> None:
    mark = _marker()
    r = in_process_sdk(app).chat.completions.create(model="native", messages=[{"role": "user", "content": mark}])
    assert r.choices[0].message.content == "Hello from the stub upstream."
    [sent] = _received(stub, mark)
    assert sent["path"] == "/v1/chat/completions" and "store" not in sent["body"]


def test_a_deployment_without_native_translates_to_chat(app: TestClient, stub: str) -> None:
    mark = _marker()
    in_process_sdk(app).responses.create(model="translated", input=mark)
    [sent] = _received(stub, mark)
    assert sent["path"] == "/v1/chat/completions"


@pytest.mark.parametrize(
    ("alias", "status", "code"),
    [
        ("native-500", 502, "bad_gateway"),
        ("native-429", 429, "upstream_rate_limited"),
        ("native-badjson", 502, "bad_upstream_response"),
    ],
)
def test_upstream_errors_are_mapped_as_on_chat(
    app: TestClient, rows: Callable[[], list[UsageRecord]], alias: str, status: int, code: str
) -> None:
    r = app.post("/v1/responses", json={"model": alias, "input": "hi"})
    assert r.status_code == status and r.json()["error"]["code"] == code
    if status == 429:
        assert r.headers["retry-after"] == "7"
    assert [(row.alias, row.status) for row in rows()] == [(alias, status)]


@pytest.mark.parametrize(
    ("alias", "error"),
    [("native-cut", "the upstream stream ended before"), ("native-failed", "upstream response failed: the stub")],
)
def test_a_stream_that_fails_upstream_ends_with_response_failed(
    app: TestClient, rows: Callable[[], list[UsageRecord]], alias: str, error: str
) -> None:
    with in_process_sdk(app).responses.create(model=alias, input="hi", stream=True) as stream:
        events = list(stream)
    assert events[-1].type == "response.failed" and "response.completed" not in [e.type for e in events]
    assert events[-1].response.error is not None and events[-1].response.error.code == "server_error"
    [row] = rows()
    assert row.status == 502 and (row.error or "").startswith(error)


def test_a_burst_stream_is_one_final_batch(app: TestClient) -> None:
    with in_process_sdk(app).responses.stream(model="native-burst", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Hello from the stub upstream." and final.usage is not None


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("alias", ["native-nousage", "translated"])
def test_usage_when_the_upstream_reports_none_is_the_ledger_count(
    app: TestClient, rows: Callable[[], list[UsageRecord]], alias: str, stream: bool
) -> None:
    sdk = in_process_sdk(app)
    if stream:
        with sdk.responses.stream(model=alias, input="count these words please") as s:
            final = s.get_final_response()
    else:
        final = sdk.responses.create(model=alias, input="count these words please")
    assert final.usage is not None
    [row] = rows()
    assert row.usage_source != "provider" and row.prompt_tokens > 0 and row.completion_tokens > 0
    assert (final.usage.input_tokens, final.usage.output_tokens) == (row.prompt_tokens, row.completion_tokens)
    assert final.usage.total_tokens == row.prompt_tokens + row.completion_tokens


def test_chat_include_usage_gets_the_counted_usage_when_the_upstream_has_none(
    app: TestClient, rows: Callable[[], list[UsageRecord]]
) -> None:
    chunks = list(
        in_process_sdk(app).chat.completions.create(
            model="translated",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    [row] = rows()
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (
        row.prompt_tokens,
        row.completion_tokens,
    )


HOSTILE: list[dict[str, Any]] = [
    {"input": [{"role": "user", "content": [{"type": "input_text", "text": "\u0000\ud7ff\U0010ffff" * 1000}]}]},
    {"input": "x" * 200_000},
    {"input": "hi", "tools": [{**WEATHER, "parameters": {"a": [[[[[[[[[[{"b": 1}]]]]]]]]]]}}]},
    {"input": "hi", "metadata": {"k": "v" * 600}},
    {"input": "hi", "stop": ["x"]},
    {"input": [{"type": "function_call_output", "call_id": "c", "output": "orphan"}]},
    {"input": "hi", "max_output_tokens": 10**30},
    {"input": "hi", "temperature": "hot"},
]


@pytest.mark.parametrize("body", HOSTILE)
@pytest.mark.parametrize("stream", [False, True])
def test_hostile_bodies_on_the_native_path_are_never_a_5xx(
    app: TestClient, rows: Callable[[], list[UsageRecord]], body: dict[str, Any], stream: bool
) -> None:
    r = app.post("/v1/responses", json={"model": "native", **body, "stream": stream})
    assert r.status_code < 500, r.text
    assert len(rows()) == 1


def test_responses_api_is_validated_at_startup(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[models.x]\nprovider = "openai_compatible"\nbase_url = "http://127.0.0.1:9/v1"\nresponses_api = "yes"\n'
    )
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with pytest.raises(ConfigError, match="responses_api"):
        create_app(settings)


def test_sdk_errors_on_the_native_path(app: TestClient) -> None:
    sdk = in_process_sdk(app)
    with pytest.raises(openai.RateLimitError):
        sdk.responses.create(model="native-429", input="hi")
    with pytest.raises(openai.InternalServerError):
        sdk.responses.create(model="native-500", input="hi")
