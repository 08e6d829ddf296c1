"""Where reasoning arrives from an upstream, in each shape it comes in, and how it is read."""

from __future__ import annotations

import orjson
import pytest

from interlock.errors import BadRequest
from interlock.translate.anthropic_upstream import (
    AnthropicStreamReader,
    anthropic_response_to_chat,
    chat_request_to_anthropic,
)
from interlock.translate.openai_relay import RelayChunk
from interlock.translate.responses_upstream import ResponsesEventReader, parse_response
from interlock.types import ChatRequest, reasoning_text


def test_both_names_upstreams_use_are_read_and_a_duplicate_is_not_doubled() -> None:
    assert reasoning_text({"reasoning_content": "a"}) == "a"
    assert reasoning_text({"reasoning": "b"}) == "b"  # vLLM's newer name, OpenRouter's
    assert reasoning_text({"reasoning_content": "same", "reasoning": "same"}) == "same"
    assert reasoning_text({"reasoning": {"effort": "low"}}) == "" and reasoning_text(None) == ""


def test_a_relayed_chunk_counts_either_name_as_generated_text() -> None:
    chunk = {"id": "c", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"reasoning": "hmm"}}]}
    relayed = RelayChunk(chunk)
    assert relayed.reasoning == "hmm" and relayed.text == "hmm"


def _response(output: list[dict[str, object]]) -> bytes:
    return orjson.dumps({"id": "resp_x", "created_at": 1, "status": "completed", "output": output})


def test_a_native_reasoning_item_is_read_from_its_text_else_its_summaries() -> None:
    message = {"type": "message", "content": [{"type": "output_text", "text": "answer"}]}
    raw = {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "step one"}]}
    summarised = {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "first"}, {"type": "summary_text", "text": "second"}],
        "encrypted_content": "gAAAA...",
    }
    for item, expected in ((raw, "step one"), (summarised, "first\n\nsecond")):
        msg = parse_response(_response([item, message]), "alias").choices[0].message
        assert (msg.model_extra or {}).get("reasoning_content") == expected and msg.content == "answer"
    plain = parse_response(_response([message]), "alias").choices[0].message
    assert "reasoning_content" not in (plain.model_extra or {})


def test_native_reasoning_deltas_become_reasoning_content_and_summaries_do_not_double_raw_text() -> None:
    reader = ResponsesEventReader("alias")

    def feed(event: dict[str, object]) -> list[str]:
        chunks = reader.feed(orjson.dumps(event))
        return [reasoning_text(c.choices[0].delta.model_extra) for c in chunks if c.choices]

    assert feed({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "delta": "sum"}) == ["sum"]
    assert feed({"type": "response.reasoning_text.delta", "item_id": "rs_2", "delta": "raw"}) == ["raw"]
    assert feed({"type": "response.reasoning_summary_text.delta", "item_id": "rs_2", "delta": "dup"}) == []
    assert feed({"type": "response.reasoning_text.delta", "item_id": "rs_2", "delta": ""}) == []


def _chat(**body: object) -> ChatRequest:
    return ChatRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}], **body})


def test_reasoning_effort_becomes_an_anthropic_thinking_budget_under_max_tokens() -> None:
    assert "thinking" not in chat_request_to_anthropic(_chat(), "claude")
    assert "thinking" not in chat_request_to_anthropic(_chat(reasoning_effort="none"), "claude")
    low = chat_request_to_anthropic(_chat(reasoning_effort="low"), "claude")
    assert low["thinking"] == {"type": "enabled", "budget_tokens": 1024} and low["max_tokens"] == 4096
    capped = chat_request_to_anthropic(_chat(reasoning_effort="high", max_tokens=3000), "claude")
    assert capped["thinking"] == {"type": "enabled", "budget_tokens": 2999}


def test_top_k_goes_to_an_anthropic_upstream() -> None:
    assert chat_request_to_anthropic(_chat(top_k=40), "claude")["top_k"] == 40
    assert "top_k" not in chat_request_to_anthropic(_chat(top_k=-1), "claude")


def test_turns_anthropic_cannot_think_in_go_without_and_impossible_asks_are_400() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    loop = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]
    assert "thinking" not in chat_request_to_anthropic(_chat(reasoning_effort="low", messages=loop), "claude")
    forced = _chat(reasoning_effort="low", tools=[tool], tool_choice="required")
    assert "thinking" not in chat_request_to_anthropic(forced, "claude")
    for body, param in (
        ({"reasoning_effort": "low", "max_tokens": 1024}, "max_tokens"),
        ({"reasoning_effort": "low", "temperature": 0.2}, "temperature"),
        ({"reasoning_effort": "turbo"}, "reasoning_effort"),
    ):
        with pytest.raises(BadRequest) as refused:
            chat_request_to_anthropic(_chat(**body), "claude")
        assert refused.value.param == param


def test_anthropic_thinking_comes_back_as_reasoning_content_plain_and_streamed() -> None:
    data = {
        "id": "msg_1",
        "content": [
            {"type": "thinking", "thinking": "let me see", "signature": "sig"},
            {"type": "text", "text": "yes"},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 5},
    }
    msg = anthropic_response_to_chat(data, "alias").choices[0].message
    assert reasoning_text(msg.model_extra) == "let me see" and msg.content == "yes"
    reader = AnthropicStreamReader("alias")
    thought = {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}
    signed = {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}}
    [chunk] = reader.feed(thought)
    assert reasoning_text(chunk.choices[0].delta.model_extra) == "hmm" and reader.feed(signed) == []
