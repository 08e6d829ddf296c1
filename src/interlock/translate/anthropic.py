"""Anthropic Messages API <-> the gateway's OpenAI-shaped types, as pure functions.

Used in both directions: the `/v1/messages` endpoint turns Anthropic requests into `ChatRequest`s
and answers back in Anthropic's format; the `anthropic` provider turns `ChatRequest`s into Messages
API calls and their answers into `ChatResponse`s and `ChatChunk`s.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from interlock.types import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    FinishReason,
    FunctionCall,
    FunctionDef,
    Message,
    NamedToolChoice,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

DEFAULT_MAX_TOKENS = 4096

_STOP_TO_OPENAI: dict[str, FinishReason] = {
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
                    id=b.id or _new_id("toolu_"),
                    function=FunctionCall(name=b.name or "", arguments=_dumps(b.input or {})),
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
                "input": _loads_object(call.function.arguments),
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
                        {"type": "tool_use", "id": call.id or _new_id("toolu_"), "name": name, "input": {}},
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


# -- the provider direction: gateway request -> Messages API -------------------------------------


def chat_request_to_anthropic(req: ChatRequest, upstream_model: str) -> dict[str, Any]:
    """Translate a chat request into a Messages API request body."""
    system: list[str] = []
    out: list[dict[str, Any]] = []

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for m in req.messages:
        if m.role in ("system", "developer"):
            system.append(m.text())
        elif m.role == "tool":
            push("user", [{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.text()}])
        elif m.role == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m.text()}] if m.text() else []
            blocks += [
                {
                    "type": "tool_use",
                    "id": c.id,
                    "name": c.function.name,
                    "input": _loads_object(c.function.arguments),
                }
                for c in m.tool_calls or []
            ]
            push("assistant", blocks)
        else:
            push("user", _user_blocks(m))
    body: dict[str, Any] = {
        "model": upstream_model,
        "max_tokens": req.output_limit() or DEFAULT_MAX_TOKENS,
        "messages": out,
    }
    format_hint = _format_instruction(req.response_format)
    if format_hint:
        system.append(format_hint)
    if system:
        body["system"] = "\n\n".join(system)
    if req.temperature is not None:
        body["temperature"] = min(req.temperature, 1.0)  # Anthropic's range is [0, 1]
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop_list():
        body["stop_sequences"] = req.stop_list()
    if req.tools:
        body["tools"] = [
            {
                "name": t.function.name,
                "description": t.function.description or "",
                "input_schema": t.function.parameters,
            }
            for t in req.tools
        ]
    if req.tool_choice is not None and req.tools:
        if isinstance(req.tool_choice, NamedToolChoice):
            body["tool_choice"] = {"type": "tool", "name": req.tool_choice.function["name"]}
        else:
            body["tool_choice"] = {"type": {"auto": "auto", "required": "any", "none": "none"}[req.tool_choice]}
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if req.stream:
        body["stream"] = True
    return body


def _user_blocks(m: Message) -> list[dict[str, Any]]:
    if isinstance(m.content, str) or m.content is None:
        return [{"type": "text", "text": m.text()}]
    blocks: list[dict[str, Any]] = []
    for p in m.content:
        if isinstance(p, TextPart):
            blocks.append({"type": "text", "text": p.text})
            continue
        url = str(p.image_url.get("url", ""))
        if url.startswith("data:") and ";base64," in url:
            media, data = url[5:].split(";base64,", 1)
            blocks.append({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
        else:
            blocks.append({"type": "image", "source": {"type": "url", "url": url}})
    return blocks


def _format_instruction(fmt: ResponseFormat | None) -> str | None:
    # The Messages API has no JSON mode; ask for it in the system prompt.
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_schema" and fmt.json_schema is not None:
        return "Respond with a single JSON value matching this JSON schema, and nothing else: " + _dumps(
            fmt.json_schema.schema_
        )
    return "Respond with a single JSON object and nothing else."


def anthropic_response_to_chat(data: dict[str, Any], alias: str) -> ChatResponse:
    """Translate a Messages API response into a chat response."""
    text = "".join(b.get("text", "") for b in data.get("content", []) if b.get("type") == "text")
    calls = [
        ToolCall(
            id=str(b.get("id") or _new_id("toolu_")),
            function=FunctionCall(name=str(b.get("name", "")), arguments=_dumps(b.get("input") or {})),
        )
        for b in data.get("content", [])
        if b.get("type") == "tool_use"
    ]
    return ChatResponse(
        id="chatcmpl-" + str(data.get("id", _new_id(""))).removeprefix("msg_"),
        created=int(time.time()),
        model=alias,
        choices=[
            Choice(
                message=AssistantMessage(content=text or (None if calls else ""), tool_calls=calls or None),
                finish_reason=_STOP_TO_OPENAI.get(str(data.get("stop_reason")), "stop"),
            )
        ],
        usage=_usage(data.get("usage")),
    )


def _usage(u: dict[str, Any] | None) -> Usage | None:
    if not u:
        return None
    prompt = (
        int(u.get("input_tokens") or 0)
        + int(u.get("cache_read_input_tokens") or 0)
        + int(u.get("cache_creation_input_tokens") or 0)
    )
    return Usage.of(prompt, int(u.get("output_tokens") or 0))


class AnthropicStreamReader:
    """Turns Messages API stream events into chat chunks; `done` once message_stop arrives."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.id = _new_id("chatcmpl-")
        self.created = int(time.time())
        self.done = False
        self._prompt = 0
        self._completion = 0
        self._tool_index: dict[int, int] = {}

    def _chunk(
        self, delta: Delta | None = None, finish: FinishReason | None = None, usage: Usage | None = None
    ) -> ChatChunk:
        choices = [] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish)]
        return ChatChunk(id=self.id, created=self.created, model=self.alias, choices=choices, usage=usage)

    def feed(self, event: dict[str, Any]) -> list[ChatChunk]:
        """Chunks for one event; raises ValueError for an `error` event."""
        kind = event.get("type")
        if kind == "message_start":
            msg = event.get("message") or {}
            self.id = "chatcmpl-" + str(msg.get("id", self.id)).removeprefix("msg_")
            u = _usage(msg.get("usage"))
            self._prompt = u.prompt_tokens if u else 0
            return [self._chunk(Delta(role="assistant", content=""))]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                idx = len(self._tool_index)
                self._tool_index[int(event.get("index", 0))] = idx
                call = ToolCallDelta(
                    index=idx,
                    id=block.get("id"),
                    type="function",
                    function={"name": block.get("name", ""), "arguments": ""},
                )
                return [self._chunk(Delta(tool_calls=[call]))]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk(Delta(content=delta.get("text", "")))]
            if delta.get("type") == "input_json_delta":
                idx = self._tool_index.get(int(event.get("index", 0)), 0)
                return [
                    self._chunk(
                        Delta(
                            tool_calls=[ToolCallDelta(index=idx, function={"arguments": delta.get("partial_json", "")})]
                        )
                    )
                ]
            return []
        if kind == "message_delta":
            self._completion = int((event.get("usage") or {}).get("output_tokens") or self._completion)
            stop = (event.get("delta") or {}).get("stop_reason")
            return [self._chunk(Delta(), finish=_STOP_TO_OPENAI.get(str(stop), "stop"))] if stop else []
        if kind == "message_stop":
            self.done = True
            return [self._chunk(usage=Usage.of(self._prompt, self._completion))]
        if kind == "error":
            raise ValueError(str((event.get("error") or {}).get("message", "upstream stream error")))
        return []  # ping, content_block_stop


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _loads_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"value": value}
