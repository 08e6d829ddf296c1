"""Anthropic's Messages API <-> the gateway's OpenAI-shaped types, as pure functions.

This module serves the Messages API: `/v1/messages` turns Anthropic requests into `ChatRequest`s here, and
answers in Anthropic's format (`anthropic_output.py`). The `anthropic` provider's direction is in
`anthropic_upstream.py`.
"""

from __future__ import annotations

import uuid
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
from interlock.types import (
    ChatRequest,
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
)

__all__ = [
    "AnthropicBlock",
    "AnthropicMessage",
    "AnthropicPrompt",
    "AnthropicRequest",
    "AnthropicTool",
    "AnthropicToolChoice",
    "anthropic_to_chat_request",
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
    says they follow there. Nor has it a flag for a failed call, so a result with `is_error` reads
    "Error: ..." (what the model should know: the call did not do what it asked)."""
    out: list[Message] = []
    parts: list[ContentPart] = []
    for b in m.content:
        if b.type != "tool_result":
            continue
        text = _text(b.content)
        if b.is_error:
            text = f"Error: {text}" if text else "Error"
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
