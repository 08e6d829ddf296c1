"""Real socket: the official `openai` SDK's `client.responses` against `interlock serve`, fake and stub models."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import openai
import orjson
import pytest

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server

pytestmark = pytest.mark.subprocess

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _config(stub: str) -> str:
    return f"""
[plugins]
modules = ["interlock.testing.fake"]

[store]
flush_interval_ms = 10

[models.echo]
provider = "fake"

[models.remote]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub"
price_input_per_mtok = 2.5
price_output_per_mtok = 10

[models.billed]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub-bill"
"""


@pytest.fixture
def client(serve: Callable[[str | None], Server], stub_upstream: str) -> tuple[openai.OpenAI, Server]:
    server = serve(_config(stub_upstream))
    return openai.OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0), server


def test_plain_and_streamed_through_a_stub_upstream(client: tuple[openai.OpenAI, Server]) -> None:
    sdk, server = client
    r = sdk.responses.create(model="remote", input="hi", instructions="be nice")
    assert r.output_text == "Hello from the stub upstream." and r.status == "completed"
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens) == (12, 6)
    with sdk.responses.create(model="remote", input="hi", stream=True) as stream:
        events = list(stream)
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Hello from the stub upstream."
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == deltas and final.usage is not None and final.usage.output_tokens == 6
    server.proc.terminate()  # graceful: flushes the ledger
    server.proc.wait(15)
    rows = sqlite3.connect(server.home / "interlock.db").execute(
        "SELECT endpoint, alias, status, stream, prompt_tokens, completion_tokens, cost_micros FROM usage ORDER BY ts"
    )
    assert rows.fetchall() == [("responses", "remote", 200, 0, 12, 6, 90), ("responses", "remote", 200, 1, 12, 6, 90)]


def test_sdk_stream_helper_tools_and_follow_up_on_the_fake_provider(client: tuple[openai.OpenAI, Server]) -> None:
    sdk, _ = client
    with sdk.responses.stream(model="echo", input="hello gateway") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == "echo: hello gateway"
    called = sdk.responses.create(model="echo", input="weather?", tools=[WEATHER])  # type: ignore[list-item]
    call = called.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    answered = sdk.responses.create(
        model="echo",
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    # The stored turn was prepended: the fake echoes the last user message, which only the stored turn holds.
    assert answered.output_text == "echo: weather?"
    assert sdk.responses.retrieve(called.id).id == called.id
    sdk.responses.delete(called.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(called.id)


def test_the_upstream_gets_the_full_conversation(client: tuple[openai.OpenAI, Server]) -> None:
    sdk, _ = client
    first = sdk.responses.create(model="billed", input="a" * 100, max_output_tokens=16)
    assert first.usage is not None and first.status == "incomplete"
    second = sdk.responses.create(model="billed", input="b", previous_response_id=first.id, max_output_tokens=16)
    # The stub bills every byte it was sent: the second prompt holds the first turn's input and output again.
    assert second.usage is not None and second.usage.input_tokens > first.usage.input_tokens + 16


def test_sdk_errors(client: tuple[openai.OpenAI, Server]) -> None:
    sdk, _ = client
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model="nope", input="hi")
    with pytest.raises(openai.BadRequestError, match="input_image"):
        sdk.responses.create(
            model="echo",
            input=[
                {"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"}]}
            ],
        )
    with pytest.raises(openai.BadRequestError, match="web_search"):
        sdk.responses.create(model="echo", input="hi", tools=[{"type": "web_search"}])
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model="echo", input="hi", previous_response_id="resp_nope")
    with sdk.responses.create(model="echo", input="a b c [[fail-mid]]", stream=True) as stream:
        events = list(stream)
    assert events[-1].type == "response.failed"


PATCH_GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\nend_patch: "*** End Patch" LF?'
APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Use the `apply_patch` tool to edit files.",
    "format": {"type": "grammar", "syntax": "lark", "definition": PATCH_GRAMMAR},
}


def test_a_custom_tool_is_called_with_free_text_plain_streamed_and_continued(
    client: tuple[openai.OpenAI, Server],
) -> None:
    sdk, _ = client
    patch = '*** Begin Patch\n*** Add File: a.txt\n+hi "there"\n*** End Patch\n'
    script = "edit it [[call:apply_patch " + orjson.dumps({"input": patch}).decode() + "]]"
    called = sdk.responses.create(model="echo", input=script, tools=[APPLY_PATCH])  # type: ignore[list-item]
    [call] = called.output
    assert call.type == "custom_tool_call" and call.name == "apply_patch" and call.input == patch
    assert call.id is not None and call.id.startswith("ctc_")
    with sdk.responses.stream(model="echo", input=script, tools=[APPLY_PATCH]) as stream:  # type: ignore[list-item]
        events = list(stream)
        final = stream.get_final_response()
    deltas = "".join(e.delta for e in events if e.type == "response.custom_tool_call_input.delta")
    [done] = [e for e in events if e.type == "response.custom_tool_call_input.done"]
    [streamed_call] = final.output
    assert deltas == done.input == patch
    assert streamed_call.type == "custom_tool_call" and streamed_call.input == patch
    answered = sdk.responses.create(
        model="echo",
        previous_response_id=called.id,
        tools=[APPLY_PATCH],  # type: ignore[list-item]
        tool_choice="none",
        input=[{"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"}],
    )
    assert answered.output_text.startswith("echo: edit it")  # the stored turn, then the tool's output
