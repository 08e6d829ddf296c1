"""Relayed chunks (`translate.openai_relay`) refuse what `parse_chunk` refuses and read the same facts."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from interlock.errors import UpstreamError
from interlock.gateway.context import StreamTally
from interlock.gateway.settlement import delta_text
from interlock.translate.openai import parse_chunk
from interlock.translate.openai_relay import RelayChunk, relay_chunk

HEAD: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "upstream-name"}


def _chunk(**fields: Any) -> bytes:
    return orjson.dumps({**HEAD, **fields})


def _choice(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish, **extra}


VALID = [
    _chunk(choices=[_choice({"role": "assistant", "content": ""})]),
    _chunk(choices=[_choice({"content": "Hello"})], system_fingerprint="fp_1"),
    _chunk(choices=[_choice({"content": None, "reasoning_content": "thinking"})]),
    _chunk(
        choices=[
            _choice(
                {
                    "tool_calls": [
                        {"index": 0, "id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a"'}}
                    ]
                }
            )
        ]
    ),
    _chunk(choices=[_choice({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]})]),
    _chunk(choices=[_choice({}, "stop", logprobs=None)]),
    _chunk(choices=[_choice({}, "eos_token")]),  # an upstream's own finish reason passes
    _chunk(choices=[], usage={"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}),
    _chunk(
        choices=[],
        usage={
            "prompt_tokens": 1,
            "completion_tokens": 2,
            "total_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 1},
        },
    ),
    orjson.dumps({"id": "c1", "created": 7, "model": "m", "choices": [{"delta": {"content": "x"}}]}),  # defaults
    orjson.dumps({"id": "c1", "created": 7, "model": "m"}),  # no choices at all
    _chunk(choices=[_choice({"content": "x"})], usage=None),
]
INVALID = [
    orjson.dumps({"object": "chat.completion.chunk", "created": 7, "model": "m", "choices": []}),  # no id
    _chunk(created="yesterday"),
    _chunk(object="chat.completion"),
    _chunk(choices="none"),
    _chunk(choices=[{"index": 0}]),  # no delta
    _chunk(choices=[_choice({"role": "user", "content": "x"})]),
    _chunk(choices=[_choice({"content": 5})]),
    _chunk(choices=[_choice({"tool_calls": [{"function": {"arguments": "{}"}}]})]),  # no index
    _chunk(choices=[_choice({"tool_calls": [{"index": 0, "function": {"arguments": 1}}]})]),
    _chunk(choices=[], usage={"prompt_tokens": "many"}),
    b"{not json",
    b'{"error": {"message": "overloaded"}}',
    b'"just a string"',
]


def _outcome(parse: Any, data: bytes) -> tuple[str, str] | None:
    try:
        parse(data, "alias")
    except UpstreamError as exc:
        return exc.code or "", exc.message
    return None


@pytest.mark.parametrize("data", INVALID)
def test_what_the_model_path_refuses_the_relay_refuses_with_the_same_error(data: bytes) -> None:
    expected = _outcome(parse_chunk, data)
    assert expected is not None  # the fixture is invalid for the model path
    assert _outcome(relay_chunk, data) == expected


@pytest.mark.parametrize("data", VALID)
def test_a_relayed_chunk_reads_what_the_model_path_reads(data: bytes) -> None:
    chunk, relayed = parse_chunk(data, "alias"), relay_chunk(data, "alias")
    assert chunk is not None and relayed is not None
    assert relayed.choices == len(chunk.choices)
    assert relayed.text == "".join(delta_text(c.delta) for c in chunk.choices)
    assert relayed.usage == chunk.usage
    model, relay = StreamTally(), StreamTally()
    for _ in range(2):
        model.observe(chunk)
        relay.observe_relay(relayed)
    assert model == relay


@pytest.mark.parametrize("data", [d for d in VALID if b"big" not in d])
def test_a_relayed_frame_is_the_upstreams_json_with_the_alias_as_model(data: bytes) -> None:
    relayed = relay_chunk(data, "alias")
    assert relayed is not None
    frame = relayed.frame()
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    assert orjson.loads(frame[6:]) == {**orjson.loads(data), "model": "alias"}  # nothing added, nothing dropped


def test_an_integer_past_64_bits_survives_the_relay() -> None:
    relayed = relay_chunk(b'{"id": "c", "created": 7, "model": "m", "big": 123456789012345678901234567890}', "alias")
    assert relayed is not None  # orjson refuses to write it; pydantic writes it
    assert relayed.frame() == b'data: {"id":"c","created":7,"model":"alias","big":123456789012345678901234567890}\n\n'


def test_done_ends_a_relayed_stream() -> None:
    assert relay_chunk(b"[DONE]", "alias") is None
    assert relay_chunk(b" [DONE] ", "alias") is None


def test_the_gateways_own_usage_chunk_relays_as_it_renders() -> None:
    chunk = parse_chunk(_chunk(choices=[], usage={"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}), "a")
    assert chunk is not None
    made = RelayChunk.of(chunk)
    assert orjson.loads(made.frame()[6:]) == orjson.loads(chunk.model_dump_json())
    assert made.usage == chunk.usage and made.choices == 0
