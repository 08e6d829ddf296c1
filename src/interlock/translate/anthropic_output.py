"""Chat answers as the Messages API's: the JSON answer and the stream of named events.

Text is cut at the first of the request's stop sequences that the upstream left in it (`stops.py`); the
model's reasoning leads as a `thinking` block when the request asked to see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from interlock.translate.anthropic import loads_object, new_id
from interlock.translate.stops import StopScanner, first_stop
from interlock.types import ChatChunk, ChatResponse, Usage, reasoning_text

_STOP_TO_ANTHROPIC = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def matched_stop(choice_extra: dict[str, Any] | None, text: str, stops: Sequence[str]) -> tuple[str, str | None]:
    """The answer's text and the stop sequence that ended it, if one is known.

    vLLM names the matched sequence in the choice's `stop_reason`; an upstream that did not apply the
    sequence leaves it in the text, which is cut there. Otherwise it is unknown (the README says so).
    """
    if not stops:
        return text, None
    hint = (choice_extra or {}).get("stop_reason")
    if isinstance(hint, str) and hint in stops:
        return text, hint
    found = first_stop(text, stops)
    if found is None:
        return text, None
    return text[: found[0]], found[1]


def _stop_reason(finish: str | None, matched: str | None) -> str:
    if matched is not None:
        return "stop_sequence"
    return _STOP_TO_ANTHROPIC.get(finish or "stop", "end_turn")


def chat_response_to_anthropic(
    resp: ChatResponse, model: str, stops: Sequence[str] = (), thinking: bool = False
) -> dict[str, Any]:
    """Render a chat response as a Messages API response (`stops`: the request's stop sequences; `thinking`:
    whether the request asked to see the model's reasoning, which then leads as a `thinking` block)."""
    choice = resp.choices[0] if resp.choices else None
    content: list[dict[str, Any]] = []
    matched: str | None = None
    thought = reasoning_text(choice.message.model_extra) if choice and thinking else ""
    if thought:
        content.append(thinking_block(thought))
    calls = (choice.message.tool_calls if choice else None) or []
    if choice and choice.message.content:
        text = choice.message.content
        if not calls:
            text, matched = matched_stop(choice.model_extra, text, stops)
        if text:
            content.append({"type": "text", "text": text})
    for call in calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": loads_object(call.function.arguments),
            }
        )
    usage = resp.usage or Usage()
    return {
        "id": "msg_" + resp.id.removeprefix("chatcmpl-"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(choice.finish_reason if choice else None, matched),
        "stop_sequence": matched,
        "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens},
    }


def thinking_block(text: str) -> dict[str, Any]:
    """A `thinking` block. Its `signature` is empty: the gateway's models sign nothing, and thinking blocks
    a client sends back are left out of the prompt anyway."""
    return {"type": "thinking", "thinking": text, "signature": ""}


Event = tuple[str, dict[str, Any]]


class AnthropicStreamWriter:
    """Turns a stream of chat chunks into Messages API stream events (name, data).

    Text is cut at the first of `stops` that the upstream left in it (see `translate/stops.py`). With
    `thinking`, the model's reasoning streams as a `thinking` block (`thinking_delta` events).
    """

    def __init__(self, model: str, message_id: str, stops: Sequence[str] = (), thinking: bool = False) -> None:
        self.model = model
        self.message_id = message_id
        self._thinking = thinking
        self._stops = tuple(stops)
        self._scanner = StopScanner(stops)
        self._started = False
        self._block: int = -1
        self._block_kind: str | None = None
        self._tool_blocks: dict[int, int] = {}
        self._finish: str | None = None
        self._hint: str | None = None  # the stop sequence an upstream named (vLLM's `stop_reason`)
        self._prompt_tokens = 0
        self._usage = Usage()

    def start(self, prompt_tokens: int = 0) -> list[Event]:
        """The message_start event, with the prompt's token count."""
        self._started = True
        self._prompt_tokens = prompt_tokens
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt_tokens, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def _close_block(self) -> list[Event]:
        if self._block_kind is None:
            return []
        self._block_kind = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._block})]

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[Event]:
        events = self._close_block()
        self._block += 1
        self._block_kind = kind
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._block, "content_block": block},
            )
        )
        return events

    def _text(self, text: str) -> list[Event]:
        if not text:
            return []
        events = [] if self._block_kind == "text" else self._open_block("text", {"type": "text", "text": ""})
        delta = {"type": "text_delta", "text": text}
        events.append(("content_block_delta", {"type": "content_block_delta", "index": self._block, "delta": delta}))
        return events

    def _thought(self, text: str) -> list[Event]:
        events = [] if self._block_kind == "thinking" else self._open_block("thinking", thinking_block(""))
        delta = {"type": "thinking_delta", "thinking": text}
        events.append(("content_block_delta", {"type": "content_block_delta", "index": self._block, "delta": delta}))
        return events

    def feed(self, chunk: ChatChunk) -> list[Event]:
        """Events for one chunk."""
        events: list[Event] = []
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            thought = reasoning_text(delta.model_extra) if self._thinking else ""
            if thought:
                events += self._thought(thought)
            if delta.content:
                events += self._text(self._scanner.feed(delta.content))
            for call in delta.tool_calls or []:
                events += self._tool_call(call.index, call.id, call.function or {})
            if choice.finish_reason:
                self._finish = choice.finish_reason
                hint = (choice.model_extra or {}).get("stop_reason")
                if isinstance(hint, str) and hint in self._stops:
                    self._hint = hint
        return events

    def _tool_call(self, index: int, call_id: str | None, function: dict[str, str]) -> list[Event]:
        events: list[Event] = []
        if index not in self._tool_blocks:
            events += self._text(self._scanner.flush())
            block = {
                "type": "tool_use",
                "id": call_id or new_id("toolu_"),
                "name": function.get("name", ""),
                "input": {},
            }
            events += self._open_block("tool", block)
            self._tool_blocks[index] = self._block
        args = function.get("arguments")
        if args:
            delta = {"type": "input_json_delta", "partial_json": args}
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": self._tool_blocks[index], "delta": delta},
                )
            )
        return events

    def finish(self) -> list[Event]:
        """The closing events: held text, last block stop, message_delta with stop reason and usage, message_stop."""
        events = self._text(self._scanner.flush())
        events += self._close_block()
        matched = self._scanner.matched or self._hint
        usage = {
            "input_tokens": self._usage.prompt_tokens or self._prompt_tokens,
            "output_tokens": self._usage.completion_tokens,
        }
        delta = {"stop_reason": _stop_reason(self._finish, matched), "stop_sequence": matched}
        events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events
