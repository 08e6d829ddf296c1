"""The Messages API translation: checks, images, stop sequences, the stream writer."""

from __future__ import annotations

from typing import Any

import pytest

from interlock.errors import BadRequest
from interlock.translate.anthropic import AnthropicRequest, anthropic_to_chat_request
from interlock.translate.anthropic_output import AnthropicStreamWriter, chat_response_to_anthropic
from interlock.translate.stops import StopScanner, first_stop
from interlock.types import ChatChunk, ChatResponse, ChunkChoice, Delta, ImagePart


def _request(**kw: Any) -> AnthropicRequest:
    return AnthropicRequest.model_validate({"model": "m", "max_tokens": 5, **kw})


def test_images_become_image_parts_in_order() -> None:
    content = [
        {"type": "text", "text": "compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
    ]
    chat = anthropic_to_chat_request(_request(messages=[{"role": "user", "content": content}]))
    parts = chat.messages[0].content
    assert isinstance(parts, list) and [p.type for p in parts] == ["text", "image_url", "image_url"]
    assert isinstance(parts[1], ImagePart) and parts[1].image_url == {"url": "data:image/png;base64,AAAA"}
    assert isinstance(parts[2], ImagePart) and parts[2].image_url == {"url": "https://example.com/a.jpg"}


def test_tool_results_come_before_the_text_and_thinking_is_not_prompt() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "text", "text": "and?"}, {"type": "tool_result", "tool_use_id": "t1", "content": "1"}],
        },
        {"role": "assistant", "content": []},  # a prefill may be empty
    ]
    tools = [{"name": "f"}]
    chat = anthropic_to_chat_request(
        _request(messages=messages, tools=tools, tool_choice={"type": "any", "disable_parallel_tool_use": True})
    )
    assert [m.role for m in chat.messages] == ["user", "assistant", "tool", "user", "assistant"]
    assert chat.messages[1].content is None and chat.messages[1].tool_calls is not None
    assert chat.tool_choice == "required" and (chat.model_extra or {})["parallel_tool_calls"] is False


def test_a_failed_tool_result_tells_the_model_it_failed() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": f"t{i}", "name": "f", "input": {}} for i in (1, 2, 3)],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "no such file", "is_error": True},
                {"type": "tool_result", "tool_use_id": "t2", "is_error": True},
                {"type": "tool_result", "tool_use_id": "t3", "content": "ok", "is_error": False},
            ],
        },
    ]
    chat = anthropic_to_chat_request(_request(messages=messages, tools=[{"name": "f"}]))
    assert [m.content for m in chat.messages[2:]] == ["Error: no such file", "Error", "ok"]


def test_images_a_tool_returned_open_the_next_user_message_under_their_call() -> None:
    png = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    messages = [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "a.png"}, png]},
                {"type": "text", "text": "what is it?"},
            ],
        },
    ]
    chat = anthropic_to_chat_request(_request(messages=messages, tools=[{"name": "read"}]))
    tool, user = chat.messages[2:]
    assert (
        tool.role == "tool" and tool.content == "a.png\n[1 image(s) returned by this tool follow in the next message]"
    )
    assert user.role == "user" and isinstance(user.content, list)
    assert [p.type for p in user.content] == ["text", "image_url", "text"]
    assert user.content[0].text == "Image(s) returned by tool call t1:"  # type: ignore[union-attr]
    assert user.content[1].image_url == {"url": "data:image/png;base64,AAAA"}  # type: ignore[union-attr]
    only_image = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [png]}]}]
    chat = anthropic_to_chat_request(_request(messages=[*messages[:2], *only_image], tools=[{"name": "read"}]))
    assert chat.messages[2].content == "[1 image(s) returned by this tool follow in the next message]"
    assert [p.type for p in chat.messages[3].content] == ["text", "image_url"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kw", "param"),
    [
        ({"messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "x"}]}]}, "type"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "x",
                                "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                            }
                        ],
                    }
                ]
            },
            "content.0.source.type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "x", "name": "f", "input": {}}]}]},
            "type",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "any"}}, "tool_choice"),
        (
            {"messages": [{"role": "user", "content": "x"}], "tools": [{"name": "f"}, {"name": "f"}]},
            "tools.1.name",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"name": "f"}],
                "tool_choice": {"type": "tool", "name": "g"},
            },
            "tool_choice.name",
        ),
    ],
)
def test_checks_name_the_field(kw: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        anthropic_to_chat_request(_request(**kw))
    assert err.value.param is not None and err.value.param.endswith(param)


def _answer(text: str, **extra: Any) -> ChatResponse:
    choice = {"message": {"content": text}, "finish_reason": "stop", **extra}
    return ChatResponse.model_validate({"id": "chatcmpl-1", "created": 0, "model": "m", "choices": [choice]})


def test_stop_sequence_named_by_the_upstream_or_found_in_the_text() -> None:
    vllm = chat_response_to_anthropic(_answer("one two", stop_reason="##"), "m", ["##", "END"])
    assert (vllm["stop_reason"], vllm["stop_sequence"]) == ("stop_sequence", "##")
    assert vllm["content"] == [{"type": "text", "text": "one two"}]
    left = chat_response_to_anthropic(_answer("a END b ## c"), "m", ["##", "END"])
    assert (left["stop_sequence"], left["content"]) == ("END", [{"type": "text", "text": "a "}])
    unknown = chat_response_to_anthropic(_answer("a b"), "m", ["##"])
    assert (unknown["stop_reason"], unknown["stop_sequence"]) == ("end_turn", None)


def test_stop_scanner_holds_back_only_possible_starts() -> None:
    scanner = StopScanner(["</x>"])
    assert scanner.feed("ab<") == "ab"
    assert scanner.feed("y") == "<y"
    assert scanner.feed("</") == ""
    assert scanner.feed("x> tail") == "" and scanner.matched == "</x>"
    assert scanner.feed("more") == "" and scanner.flush() == ""
    ended = StopScanner(["</x>"])
    assert ended.feed("a</") == "a" and ended.flush() == "</" and ended.matched is None
    assert first_stop("xxBxA", ["A", "B"]) == (2, "B")


def _chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> ChatChunk:
    choice = ChunkChoice(delta=Delta(content=content), finish_reason=finish, **extra)
    return ChatChunk(id="c", created=0, model="m", choices=[choice])


def test_stream_writer_reports_prompt_tokens_and_stop() -> None:
    writer = AnthropicStreamWriter("m", "msg_1", ["STOP"])
    start = writer.start(prompt_tokens=12)
    assert start[0][1]["message"]["usage"]["input_tokens"] == 12
    events = writer.feed(_chunk("hi ST")) + writer.feed(_chunk("OP no")) + writer.feed(_chunk(finish="stop"))
    events += writer.finish()
    text = "".join(d["delta"]["text"] for name, d in events if name == "content_block_delta")
    assert text == "hi "
    delta = next(d for name, d in events if name == "message_delta")
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "STOP"}
    assert delta["usage"]["input_tokens"] == 12
    hinted = AnthropicStreamWriter("m", "msg_2", ["##"])
    hinted.start(1)
    hinted.feed(_chunk("x"))
    hinted.feed(_chunk(finish="stop", stop_reason="##"))
    last = next(d for name, d in hinted.finish() if name == "message_delta")
    assert last["delta"]["stop_sequence"] == "##"
