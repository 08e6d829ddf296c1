"""Anthropic's Messages API <-> the gateway's OpenAI-shaped types, as pure functions.

This module serves the Messages API: `/v1/messages` turns Anthropic requests into `ChatRequest`s and
answers in Anthropic's format. The `anthropic` provider's direction is in `anthropic_upstream.py`.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from interlock.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FinishReason,
    FunctionCall,
    FunctionDef,
    Message,
    NamedToolChoice,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)

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


# -- the Anthropic request, validated -----------------------------------------------------------


class AnthropicBlock(BaseModel):
    """A content block; the fields used depend on `type`."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "document"]
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[AnthropicBlock] | None = None
    is_error: bool | None = None


class AnthropicMessage(BaseModel):
    """One message of a Messages API request."""

    role: Literal["user", "assistant"]
    content: str | list[AnthropicBlock]


class AnthropicTool(BaseModel):
    """A tool definition."""

    model_config = ConfigDict(extra="allow")

    name: str
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class AnthropicToolChoice(BaseModel):
    """`tool_choice`."""

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None


class AnthropicRequest(BaseModel):
    """A Messages API request."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[AnthropicBlock] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    stop_sequences: list[str] | None = None
    stream: bool = False
    tools: list[AnthropicTool] | None = None
    tool_choice: AnthropicToolChoice | None = None
    metadata: dict[str, Any] | None = None


def _block_text(content: str | list[AnthropicBlock] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(b.text or "" for b in content if b.type == "text")


def anthropic_to_chat_request(req: AnthropicRequest) -> ChatRequest:
    """Translate a Messages API request into the gateway's chat request."""
    messages: list[Message] = []
    if req.system:
        messages.append(Message(role="system", content=_block_text(req.system)))
    for m in req.messages:
        if isinstance(m.content, str):
            messages.append(Message(role=m.role, content=m.content))
            continue
        texts = [TextPart(type="text", text=b.text or "") for b in m.content if b.type == "text"]
        if m.role == "assistant":
            calls = [
                ToolCall(
                    id=b.id or new_id("toolu_"),
                    function=FunctionCall(name=b.name or "", arguments=dumps_json(b.input or {})),
                )
                for b in m.content
                if b.type == "tool_use"
            ]
            text = "".join(p.text for p in texts)
            messages.append(
                Message(role="assistant", content=text or None if calls else text, tool_calls=calls or None)
            )
            continue
        for b in m.content:
            if b.type == "tool_result":
                messages.append(Message(role="tool", tool_call_id=b.tool_use_id or "", content=_block_text(b.content)))
        if texts:
            messages.append(Message(role="user", content=texts))
    tools = [
        Tool(function=FunctionDef(name=t.name, description=t.description, parameters=t.input_schema))
        for t in req.tools or []
    ]
    choice: Any = None
    if req.tool_choice is not None:
        choice = {"auto": "auto", "any": "required", "none": "none"}.get(req.tool_choice.type)
        if req.tool_choice.type == "tool":
            choice = NamedToolChoice(function={"name": req.tool_choice.name or ""})
    user = str((req.metadata or {}).get("user_id")) if (req.metadata or {}).get("user_id") else None
    return ChatRequest(
        model=req.model,
        messages=messages,
        max_tokens=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        stop=req.stop_sequences or None,
        stream=req.stream,
        tools=tools or None,
        tool_choice=choice,
        user=user,
    )


def chat_response_to_anthropic(resp: ChatResponse, model: str) -> dict[str, Any]:
    """Render a chat response as a Messages API response."""
    choice = resp.choices[0] if resp.choices else None
    content: list[dict[str, Any]] = []
    if choice and choice.message.content:
        content.append({"type": "text", "text": choice.message.content})
    for call in (choice.message.tool_calls if choice else None) or []:
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
        "stop_reason": _STOP_TO_ANTHROPIC.get(choice.finish_reason or "stop", "end_turn") if choice else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens},
    }


class AnthropicStreamWriter:
    """Turns a stream of chat chunks into Messages API stream events (name, data)."""

    def __init__(self, model: str, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self._started = False
        self._block: int = -1
        self._block_kind: str | None = None
        self._tool_blocks: dict[int, int] = {}
        self._stop: str | None = None
        self._usage = Usage()

    def start(self, prompt_tokens: int = 0) -> list[tuple[str, dict[str, Any]]]:
        """The message_start event."""
        self._started = True
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

    def _close_block(self) -> list[tuple[str, dict[str, Any]]]:
        if self._block_kind is None:
            return []
        self._block_kind = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._block})]

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
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

    def feed(self, chunk: ChatChunk) -> list[tuple[str, dict[str, Any]]]:
        """Events for one chunk."""
        events: list[tuple[str, dict[str, Any]]] = []
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                if self._block_kind != "text":
                    events += self._open_block("text", {"type": "text", "text": ""})
                events.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": self._block,
                            "delta": {"type": "text_delta", "text": delta.content},
                        },
                    )
                )
            for call in delta.tool_calls or []:
                if call.index not in self._tool_blocks:
                    name = (call.function or {}).get("name", "")
                    events += self._open_block(
                        "tool",
                        {"type": "tool_use", "id": call.id or new_id("toolu_"), "name": name, "input": {}},
                    )
                    self._tool_blocks[call.index] = self._block
                args = (call.function or {}).get("arguments")
                if args:
                    events.append(
                        (
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": self._tool_blocks[call.index],
                                "delta": {"type": "input_json_delta", "partial_json": args},
                            },
                        )
                    )
            if choice.finish_reason:
                self._stop = _STOP_TO_ANTHROPIC.get(choice.finish_reason, "end_turn")
        return events

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        """The closing events: last block stop, message_delta with usage, message_stop."""
        events = self._close_block()
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop or "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": self._usage.completion_tokens},
                },
            )
        )
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
