"""Translation functions against JSON fixtures (tests/fixtures/translate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interlock.errors import BadRequest, RateLimited, Unavailable, UpstreamError, UpstreamTimeout
from interlock.translate.anthropic import AnthropicRequest, anthropic_to_chat_request
from interlock.translate.anthropic_upstream import (
    AnthropicStreamReader,
    anthropic_response_to_chat,
    chat_request_to_anthropic,
)
from interlock.translate.openai import (
    SSEDecoder,
    chat_payload,
    error_from_upstream,
    parse_chat_response,
    parse_chunk,
)
from interlock.types import ChatRequest

FIXTURES = Path(__file__).parent.parent / "fixtures" / "translate"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())  # type: ignore[no-any-return]


def test_openai_request_to_anthropic() -> None:
    f = load("openai_to_anthropic_tools.json")
    assert chat_request_to_anthropic(ChatRequest.model_validate(f["input"]), f["upstream_model"]) == f["expected"]


def test_anthropic_response_to_openai() -> None:
    f = load("anthropic_response_tool_use.json")
    out = anthropic_response_to_chat(f["input"], "alias").model_dump()
    out.pop("created")
    assert out == f["expected"]


def test_anthropic_request_to_chat() -> None:
    f = load("anthropic_request_to_chat.json")
    out = anthropic_to_chat_request(AnthropicRequest.model_validate(f["input"])).model_dump(
        exclude_none=True, by_alias=True
    )
    assert out == f["expected"]


def test_openai_payload_passes_unknown_params_and_forces_usage() -> None:
    f = load("openai_chat_payload_stream.json")
    assert chat_payload(ChatRequest.model_validate(f["input"]), f["upstream_model"], stream=True) == f["expected"]


def test_anthropic_stream_reader_reassembles_tool_calls() -> None:
    reader = AnthropicStreamReader("alias")
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 9}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": "1}"},
        },
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}},
        {"type": "message_stop"},
    ]
    chunks = [c for e in events for c in reader.feed(e)]
    args = "".join(
        (tc.function or {}).get("arguments", "") for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or []
    )
    assert args == '{"a":1}' and reader.done
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 13
    assert any(ch.finish_reason == "tool_calls" for c in chunks for ch in c.choices)
    with pytest.raises(ValueError, match="overloaded"):
        reader.feed({"type": "error", "error": {"message": "overloaded"}})


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequest),
        (422, BadRequest),
        (401, UpstreamError),
        (404, UpstreamError),
        (429, RateLimited),
        (500, UpstreamError),
        (503, Unavailable),
        (504, UpstreamTimeout),
    ],
)
def test_upstream_errors_map_to_client_errors(status: int, kind: type) -> None:
    err = error_from_upstream(status, b'{"error": {"message": "nope"}}', "3")
    assert type(err) is kind and "nope" in err.message
    if kind is RateLimited:
        assert err.headers["Retry-After"] == "3"


def test_bad_upstream_bodies_are_502() -> None:
    with pytest.raises(UpstreamError, match="invalid chat completion"):
        parse_chat_response(b"<html>", "a")
    with pytest.raises(UpstreamError, match="not JSON"):
        parse_chunk(b"{oops", "a")
    with pytest.raises(UpstreamError, match="mid-stream: boom"):
        parse_chunk(b'{"error": {"message": "boom"}}', "a")
    assert parse_chunk(b"[DONE]", "a") is None


def test_sse_decoder_handles_split_frames_and_comments() -> None:
    d = SSEDecoder()
    assert d.feed(b': keep-alive\n\ndata: {"a"') == []
    assert d.pending()
    assert d.feed(b":1}\n\nevent: x\ndata: 2\r\n\r\n") == [(None, b'{"a":1}'), (b"x", b"2")]
    assert not d.pending()


def test_parsed_chunks_carry_the_alias() -> None:
    raw = b'{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "upstream-name", "choices": []}'
    chunk = parse_chunk(raw, "my-alias")
    assert chunk is not None and chunk.model == "my-alias"
    assert '"model":"my-alias"' in chunk.model_dump_json()


def test_fields_an_upstream_adds_are_relayed() -> None:
    f = load("openai_upstream_extras.json")
    chunk = parse_chunk(json.dumps(f["chunk"]).encode(), "alias")
    assert chunk is not None
    out = json.loads(chunk.model_dump_json())
    assert out["model"] == "alias" and out["system_fingerprint"] == "fp_1"
    assert out["choices"][0]["delta"]["reasoning_content"] == "First, "
    response = parse_chat_response(json.dumps(f["response"]).encode(), "alias")
    out = json.loads(response.model_dump_json())
    assert out["model"] == "alias" and out["choices"][0]["message"]["reasoning_content"] == "2 + 2 is 4."
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 8}
    assert out["usage"]["completion_tokens_details"] == {"reasoning_tokens": 4}
    assert response.usage is not None and response.usage.prompt_tokens == 10


def test_an_upstream_finish_reason_outside_openais_four_passes_through() -> None:
    chunk = parse_chunk(json.dumps(load("openai_upstream_extras.json")["odd_finish_chunk"]).encode(), "alias")
    assert chunk is not None and chunk.choices[0].finish_reason == "function_call"
