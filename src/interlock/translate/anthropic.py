"""Anthropic's Messages API <-> the gateway's OpenAI-shaped types, as pure functions.

This module serves the Messages API: `/v1/messages` turns Anthropic requests into `ChatRequest`s and
answers in Anthropic's format. The `anthropic` provider's direction is in `anthropic_upstream.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from interlock.errors import BadRequest, describe_validation_error
from interlock.translate.anthropic_checks import check_prompt, check_request
from interlock.translate.anthropic_models import (
    AnthropicBlock,
    AnthropicMessage,
    AnthropicPrompt,
    AnthropicRequest,
    AnthropicTool,
    AnthropicToolChoice,
)
from interlock.translate.stops import StopScanner, first_stop
from interlock.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ContentPart,
    FinishReason,
    FunctionCall,
    FunctionDef,
    ImagePart,
    JsonSchemaSpec,
    Message,
    NamedToolChoice,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    Usage,
    reasoning_text,
)

__all__ = [
    "AnthropicBlock",
    "AnthropicMessage",
    "AnthropicPrompt",
    "AnthropicRequest",
    "AnthropicStreamWriter",
    "AnthropicTool",
    "AnthropicToolChoice",
    "anthropic_to_chat_request",
    "chat_response_to_anthropic",
    "count_text",
    "effort_of",
    "prompt_messages",
    "prompt_text",
    "prompt_tools",
]

DEFAULT_MAX_TOKENS = 4096

STOP_TO_OPENAI: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
_STOP_TO_ANTHROPIC = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


# -- the Anthropic request, checked, then translated ------------------------------------------


def _text(blocks: list[AnthropicBlock] | None) -> str:
    return "".join(b.text or "" for b in blocks or () if b.type == "text")


def _image(block: AnthropicBlock) -> ImagePart:
    source = block.source or {}
    if source.get("type") == "base64":
        url = f"data:{source['media_type']};base64,{source['data']}"
    else:
        url = str(source["url"])
    return ImagePart(type="image_url", image_url={"url": url})


def _user_messages(m: AnthropicMessage) -> list[Message]:
    """Tool results first (each a `tool` message), then the text and images as one user message.

    A chat tool message carries text only, so the images a tool returned (a screenshot, a file it read)
    open the user message that follows, each tool's under a line naming its call, and its tool message
    says they follow there."""
    out: list[Message] = []
    parts: list[ContentPart] = []
    for b in m.content:
        if b.type != "tool_result":
            continue
        text = _text(b.content)
        pictures = [_image(p) for p in b.content or () if p.type == "image"]
        if pictures:
            note = f"[{len(pictures)} image(s) returned by this tool follow in the next message]"
            text = f"{text}\n{note}" if text else note
            parts += [TextPart(type="text", text=f"Image(s) returned by tool call {b.tool_use_id}:"), *pictures]
        out.append(Message(role="tool", tool_call_id=b.tool_use_id, content=text))
    parts += [
        TextPart(type="text", text=b.text or "") if b.type == "text" else _image(b)
        for b in m.content
        if b.type in ("text", "image")
    ]
    if m.plain:
        out.append(Message(role="user", content=_text(m.content)))
    elif parts:
        out.append(Message(role="user", content=parts))
    return out


def _assistant_message(m: AnthropicMessage) -> Message:
    """Text and tool calls; thinking blocks of earlier turns are not part of the prompt (as on Anthropic's API)."""
    calls = [
        ToolCall(id=b.id or new_id("toolu_"), function=FunctionCall(name=b.name or "", arguments=dumps_json(b.input)))
        for b in m.content
        if b.type == "tool_use"
    ]
    text = _text(m.content)
    return Message(role="assistant", content=text or None if calls else text, tool_calls=calls or None)


def prompt_messages(req: AnthropicPrompt) -> list[Message]:
    """The prompt as chat messages (the request must have passed `check_prompt`)."""
    messages: list[Message] = []
    if req.system:
        messages.append(Message(role="system", content=_text(req.system)))
    for m in req.messages:
        if m.role == "assistant":
            messages.append(_assistant_message(m))
        elif m.role == "system":  # instructions at their place in the conversation
            messages.append(Message(role="system", content=_text(m.content)))
        else:
            messages.extend(_user_messages(m))
    return messages


def prompt_tools(req: AnthropicPrompt) -> list[Tool]:
    """The tools as chat tools."""
    return [
        Tool(function=FunctionDef(name=t.name, description=t.description, parameters=t.input_schema))
        for t in req.tools or []
    ]


def prompt_text(messages: list[Message], tools: list[Tool]) -> str:
    """The text a prompt's tokens are counted in: every message, then the tool definitions."""
    text = "\n".join(m.text() for m in messages)
    if tools:
        text += "\n" + dumps_json([t.model_dump(exclude_none=True) for t in tools])
    return text


def _untranslatable(exc: ValidationError) -> BadRequest:
    """A case the checks missed is still the client's 400, never a 500."""
    err = describe_validation_error(exc)
    err.message = f"the request cannot be translated to a chat request: {err.message}"
    return err


def count_text(req: AnthropicPrompt) -> str:
    """Check a prompt (a 400 naming the field), then the text its tokens are counted in."""
    check_prompt(req)
    try:
        text = prompt_text(prompt_messages(req), prompt_tools(req))
    except ValidationError as exc:
        raise _untranslatable(exc) from None
    if req.output_config is not None and req.output_config.format is not None:
        text += "\n" + dumps_json(req.output_config.format.schema_)  # the schema reaches the model too
    return text


def anthropic_to_chat_request(req: AnthropicRequest) -> ChatRequest:
    """Check a Messages API request (a 400 naming the field), then translate it into the gateway's chat request."""
    check_request(req)
    try:
        return _chat_request(req)
    except ValidationError as exc:
        raise _untranslatable(exc) from None


# `output_config.effort` as chat's `reasoning_effort` (chat has no level above xhigh).
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "xhigh"}
# A thinking budget as an effort: under 4,096 tokens low, under 16,384 medium, else high.
_BUDGETS = ((4096, "low"), (16384, "medium"))


def effort_of(req: AnthropicPrompt) -> str | None:
    """The chat `reasoning_effort` a request asks for, or None for the model's own default.

    With thinking enabled: `output_config.effort` where set, else the thinking budget (`_BUDGETS`).
    Otherwise `output_config.effort` alone, except "high": it is Anthropic's default, so sending it
    changes nothing (and a model that does not reason takes it)."""
    effort = req.output_config.effort if req.output_config is not None else None
    thinking = req.thinking
    if thinking is not None and thinking.type == "enabled":
        if effort is not None:
            return _EFFORTS[effort]
        budget = thinking.budget_tokens or 0
        return next((level for limit, level in _BUDGETS if budget < limit), "high")
    return None if effort in (None, "high") else _EFFORTS[effort]


def _chat_request(req: AnthropicRequest) -> ChatRequest:
    choice: Any = None
    extra: dict[str, Any] = {}
    effort = effort_of(req)
    if effort is not None:
        extra["reasoning_effort"] = effort
    if req.top_k is not None:  # vLLM, SGLang, llama.cpp and the local engine take it; OpenAI itself refuses it
        extra["top_k"] = req.top_k
    if req.tool_choice is not None:
        choice = {"auto": "auto", "any": "required", "none": "none"}.get(req.tool_choice.type)
        if req.tool_choice.type == "tool":
            choice = NamedToolChoice(function={"name": req.tool_choice.name or ""})
        if req.tool_choice.disable_parallel_tool_use:
            extra["parallel_tool_calls"] = False
    if req.output_config is not None and req.output_config.format is not None:
        schema = req.output_config.format.schema_
        extra["response_format"] = ResponseFormat(
            type="json_schema", json_schema=JsonSchemaSpec(name="output", schema=schema)
        )
    user_id = (req.metadata or {}).get("user_id")
    return ChatRequest(
        model=req.model,
        messages=prompt_messages(req),
        max_tokens=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        stop=req.stop_sequences or None,
        stream=req.stream,
        tools=prompt_tools(req) or None,
        tool_choice=choice,
        user=str(user_id) if user_id else None,
        **extra,
    )


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


def new_id(prefix: str) -> str:
    """A random id with `prefix`."""
    return prefix + uuid.uuid4().hex[:24]


def dumps_json(obj: Any) -> str:
    """Compact JSON text."""
    return orjson.dumps(obj).decode()


def loads_object(text: str) -> dict[str, Any]:
    """A JSON object from tool-call arguments; anything else is wrapped so no input is lost."""
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"value": value}
