"""Gateway requests -> Anthropic's Messages API, and its answers back, for the `anthropic` provider.

The other direction (serving the Messages API on `/v1/messages`) is in `translate/anthropic.py`.
Chat's `reasoning_effort` becomes extended thinking (`THINKING_BUDGETS`), and `thinking` blocks come back
as `reasoning_content`, the field every surface reads reasoning from.
"""

from __future__ import annotations

import time
from typing import Any

from interlock.errors import BadRequest
from interlock.translate.anthropic import (
    DEFAULT_MAX_TOKENS,
    STOP_TO_OPENAI,
    dumps_json,
    loads_object,
    new_id,
)
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
    Message,
    NamedToolChoice,
    ResponseFormat,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)

# Chat's `reasoning_effort` as a thinking budget in tokens (Anthropic's floor is 1,024), kept under max_tokens.
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}


def _thinking(req: ChatRequest, max_tokens: int) -> dict[str, Any] | None:
    """The `thinking` the request's `reasoning_effort` asks for, or None.

    A conversation that ends in tool results continues an assistant turn whose thinking Anthropic wants
    back signed, which chat messages cannot carry, and a forced tool cannot be combined with thinking:
    those turns go without it (the model still answers; only its reasoning is not shown)."""
    effort = (req.model_extra or {}).get("reasoning_effort")
    if effort is None or effort == "none":
        return None
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise BadRequest(
            f"'reasoning_effort' must be one of none, {', '.join(THINKING_BUDGETS)}; got {str(effort)[:40]!r}",
            code="invalid_value",
            param="reasoning_effort",
        )
    if max_tokens <= 1024:
        raise BadRequest(
            f"reasoning on an Anthropic model needs a max_tokens above 1024 (the floor of its thinking budget), "
            f"got {max_tokens}; raise it or drop 'reasoning_effort'",
            code="invalid_value",
            param="max_tokens",
        )
    if req.temperature is not None and req.temperature != 1:
        raise BadRequest(
            "an Anthropic model reasons only at temperature 1; drop 'temperature' or 'reasoning_effort'",
            code="unsupported_parameter",
            param="temperature",
        )
    forced = req.tool_choice == "required" or isinstance(req.tool_choice, NamedToolChoice)
    if req.messages[-1].role == "tool" or (forced and req.tools):
        return None
    return {"type": "enabled", "budget_tokens": min(budget, max_tokens - 1)}


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
                    "input": loads_object(c.function.arguments),
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
    thinking = _thinking(req, body["max_tokens"])
    if thinking is not None:
        body["thinking"] = thinking
    format_hint = _format_instruction(req.response_format)
    if format_hint:
        system.append(format_hint)
    if system:
        body["system"] = "\n\n".join(system)
    if req.temperature is not None:
        body["temperature"] = min(req.temperature, 1.0)  # Anthropic's range is [0, 1]
    if req.top_p is not None:
        body["top_p"] = req.top_p
    top_k = (req.model_extra or {}).get("top_k")
    if isinstance(top_k, int) and not isinstance(top_k, bool) and top_k > 0:
        body["top_k"] = top_k
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
        return "Respond with a single JSON value matching this JSON schema, and nothing else: " + dumps_json(
            fmt.json_schema.schema_
        )
    return "Respond with a single JSON object and nothing else."


def anthropic_response_to_chat(data: dict[str, Any], alias: str) -> ChatResponse:
    """Translate a Messages API response into a chat response."""
    text = "".join(b.get("text", "") for b in data.get("content", []) if b.get("type") == "text")
    thought = "".join(str(b.get("thinking", "")) for b in data.get("content", []) if b.get("type") == "thinking")
    calls = [
        ToolCall(
            id=str(b.get("id") or new_id("toolu_")),
            function=FunctionCall(name=str(b.get("name", "")), arguments=dumps_json(b.get("input") or {})),
        )
        for b in data.get("content", [])
        if b.get("type") == "tool_use"
    ]
    return ChatResponse(
        id="chatcmpl-" + str(data.get("id", new_id(""))).removeprefix("msg_"),
        created=int(time.time()),
        model=alias,
        choices=[
            Choice(
                message=AssistantMessage(
                    content=text or (None if calls else ""),
                    tool_calls=calls or None,
                    **({"reasoning_content": thought} if thought else {}),
                ),
                finish_reason=STOP_TO_OPENAI.get(str(data.get("stop_reason")), "stop"),
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
        self.id = new_id("chatcmpl-")
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
            if delta.get("type") == "thinking_delta" and delta.get("thinking"):
                return [self._chunk(Delta.model_validate({"reasoning_content": str(delta["thinking"])}))]
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
            return [self._chunk(Delta(), finish=STOP_TO_OPENAI.get(str(stop), "stop"))] if stop else []
        if kind == "message_stop":
            self.done = True
            return [self._chunk(usage=Usage.of(self._prompt, self._completion))]
        if kind == "error":
            raise ValueError(str((event.get("error") or {}).get("message", "upstream stream error")))
        return []  # ping, content_block_stop, signature_delta
