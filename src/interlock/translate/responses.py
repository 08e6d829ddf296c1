"""OpenAI's Responses API <-> the gateway's chat types, as pure functions.

`/v1/responses` validates a Responses request (`ResponsesRequest`, then `to_chat_request`), runs it as
a `ChatRequest` on the same pipeline as chat, and renders the answer as a Responses object
(`to_response`) or, streamed, as the Responses event sequence (`responses_stream.ResponsesStreamWriter`).
What chat cannot carry (images, files, built-in tools, background runs) is refused with a
400 naming the field, never dropped. The upstream always gets the whole conversation: a stored earlier
turn (`previous_response_id`) is prepended here as chat messages, so the budget bound sees every token
the upstream may bill.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from interlock.errors import BadRequest, describe_validation_error
from interlock.translate.responses_tools import (
    SEARCH,
    SEPARATOR,
    ClosedModel,
    ToolNames,
    chat_tool_choice,
    chat_tools,
    custom_arguments,
)
from interlock.types import (
    ChatRequest,
    ContentPart,
    FunctionCall,
    JsonSchemaSpec,
    Message,
    ResponseFormat,
    TextPart,
    ToolCall,
)
from interlock.types.base import MAX_MESSAGES, MAX_PARTS, MAX_TOOLS, check_depth

# Fields of the Responses API that chat cannot honour: refused when set (null, false and [] are "not set").
UNSUPPORTED = ("background", "conversation", "prompt", "max_tool_calls", "top_logprobs", "context")
_INPUT_PARTS = {"input_text": "text", "output_text": "text", "refusal": "refusal"}


class ResponsesChat(ChatRequest):
    """A chat request translated from `/v1/responses`: its type is the wire it came from.

    The gateway and its hooks treat it as any `ChatRequest` (their `model_copy` rewrites keep the
    type). A provider whose upstream serves the Responses API itself (`openai_compatible` with
    `responses_api = "native"`) sends it there instead of to chat completions; every other provider,
    and every request from another endpoint, goes to chat as before. `names` turns the model's calls
    back into the Responses items of the tools they name.
    """

    _names: ToolNames = PrivateAttr(default_factory=ToolNames)

    @property
    def names(self) -> ToolNames:
        """The Responses name, namespace and kind behind each chat tool name."""
        return self._names


class TextFormat(ClosedModel):
    """`text.format`: plain text, any JSON object, or JSON matching a schema."""

    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(default=None, max_length=64)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _bounded(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_depth(v, "schema")


class TextConfig(ClosedModel):
    """`text`."""

    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
SummaryMode = Literal["auto", "concise", "detailed"]


class ReasoningConfig(ClosedModel):
    """`reasoning`: how much a reasoning model thinks. `effort` reaches the model as chat's `reasoning_effort`;
    what it reasons comes back as a reasoning item with the text as `reasoning_text` content (as vLLM serves
    open-weight reasoning models), and as its summary too when `summary` is set (`responses_output`)."""

    effort: Effort | None = None
    summary: SummaryMode | None = None
    generate_summary: SummaryMode | None = None  # the older name of `summary`


class ResponsesRequest(ClosedModel):
    """A Responses API request, validated. Input items stay raw here: `input_messages` checks them one by one."""

    model: str = Field(min_length=1, max_length=256)
    input: str | Annotated[list[Any], Field(max_length=MAX_MESSAGES)]  # items are checked one by one
    instructions: str | None = None
    tools: list[Any] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1, strict=True)
    temperature: float | None = Field(default=None, ge=0, le=2, strict=True)
    top_p: float | None = Field(default=None, ge=0, le=1, strict=True)  # 0 is allowed, as OpenAI allows it
    metadata: dict[str, str] | None = None
    # Accepted and not acted on: what a client says about itself (Codex: its thread and turn ids).
    client_metadata: dict[str, str] | None = None
    stream: bool = Field(default=False, strict=True)
    store: bool = Field(default=True, strict=True)
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=256)
    parallel_tool_calls: bool | None = Field(default=None, strict=True)
    user: str | None = Field(default=None, max_length=256)
    # Accepted and not acted on: hints for OpenAI's own caching and abuse tracking.
    safety_identifier: str | None = Field(default=None, max_length=256)
    prompt_cache_key: str | None = Field(default=None, max_length=256)
    service_tier: Literal["auto", "default"] | None = None
    truncation: Literal["disabled"] | None = None
    # Reasoning items carry their text in the clear; none is encrypted, so `encrypted_content` stays null.
    include: list[Literal["reasoning.encrypted_content"]] | None = Field(default=None, max_length=8)
    stream_options: dict[str, bool] | None = None
    reasoning: ReasoningConfig | None = None
    # Refused when set (see UNSUPPORTED); declared so that `null` passes.
    background: Literal[False] | None = None
    conversation: None = None
    prompt: None = None
    max_tool_calls: None = None
    top_logprobs: Literal[0] | None = None
    context: None = None

    @field_validator("metadata")
    @classmethod
    def _bounded(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is not None and (len(v) > 16 or any(len(k) > 64 or len(s) > 512 for k, s in v.items())):
            raise ValueError("at most 16 pairs, keys up to 64 and values up to 512 characters")
        return v

    @field_validator("client_metadata")
    @classmethod
    def _bounded_client(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is not None and (len(v) > 64 or any(len(k) > 128 or len(s) > 8192 for k, s in v.items())):
            raise ValueError("at most 64 pairs, keys up to 128 and values up to 8192 characters")
        return v


def parse_request(data: dict[str, Any]) -> ResponsesRequest:
    """`data` as a `ResponsesRequest`, or a 400 naming the first bad or unsupported field."""
    for name in UNSUPPORTED:
        if data.get(name) not in (None, False, [], 0):
            raise BadRequest(f"'{name}' is not supported by this gateway", param=name, code="unsupported_parameter")
    try:
        return ResponsesRequest.model_validate(data)
    except ValidationError as exc:
        raise describe_validation_error(exc) from None


# -- input items -> chat messages -------------------------------------------------------------


def _bad(param: str, message: str, code: str = "invalid_value") -> BadRequest:
    return BadRequest(f"invalid '{param}': {message}", param=param, code=code)


def _text(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _bad(param, "must be a string")
    return value


def _parts(content: Any, param: str, allowed: tuple[str, ...]) -> list[TextPart]:
    """The text parts of a content list; any other part is refused, naming it."""
    if not isinstance(content, list):
        raise _bad(param, "must be a string or a list of content parts")
    if len(content) > MAX_PARTS:
        raise _bad(param, f"holds {len(content)} content parts; at most {MAX_PARTS} are allowed")
    parts = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        if not isinstance(part, dict):
            raise _bad(where, "must be an object")
        kind = part.get("type")
        if kind not in allowed:
            raise BadRequest(
                f"content part type {kind!r} at '{where}.type' is not supported; send {' or '.join(allowed)}",
                param=f"{where}.type",
                code="unsupported_content",
            )
        parts.append(TextPart(type="text", text=_text(part.get(_INPUT_PARTS[kind]), f"{where}.{_INPUT_PARTS[kind]}")))
    return parts


def _content(parts: list[TextPart]) -> str | list[ContentPart]:
    return parts[0].text if len(parts) == 1 else list[ContentPart](parts)


def _message(item: dict[str, Any], param: str) -> Message:
    role = item.get("role")
    if role not in ("user", "system", "developer", "assistant"):
        raise _bad(f"{param}.role", "must be 'user', 'system', 'developer' or 'assistant'")
    content = item.get("content")
    if isinstance(content, str):
        return Message(role=role, content=content)
    allowed = ("output_text", "refusal") if role == "assistant" else ("input_text",)
    parts = _parts(content, f"{param}.content", allowed)
    if role == "assistant":
        return Message(role=role, content="".join(p.text for p in parts))
    return Message(role=role, content=_content(parts) if parts else "")


def _call(item: dict[str, Any], param: str) -> ToolCall:
    search = item.get("type") == "tool_search_call"
    call_id = _text(item.get("call_id") or (item.get("id") if search else None), f"{param}.call_id")
    if not call_id:
        raise _bad(f"{param}.call_id", "must not be empty")
    if search:  # a client-run tool search: its chat function's call
        try:
            arguments = orjson.dumps(check_depth(item.get("arguments", {}), f"'{param}.arguments'")).decode()
        except ValueError as exc:
            raise _bad(f"{param}.arguments", str(exc)) from None
        return ToolCall(id=call_id, function=FunctionCall(name=SEARCH, arguments=arguments))
    name = _text(item.get("name"), f"{param}.name")
    namespace = item.get("namespace")
    if namespace is not None:  # a function of a namespace tool: its chat name (`responses_tools`)
        name = f"{_text(namespace, f'{param}.namespace')}{SEPARATOR}{name}"
    if item.get("type") == "custom_tool_call":  # a custom tool's input, as its chat function's arguments
        arguments = custom_arguments(_text(item.get("input", ""), f"{param}.input"))
    else:
        arguments = _text(item.get("arguments", ""), f"{param}.arguments")
    return ToolCall(id=call_id, function=FunctionCall(name=name, arguments=arguments))


def _output(item: dict[str, Any], param: str) -> Message:
    call_id = _text(item.get("call_id"), f"{param}.call_id")
    if not call_id:
        raise _bad(f"{param}.call_id", "must not be empty")
    if item.get("type") == "tool_search_output":  # its tools join the request's (`offered`); the model is told
        found = [str(t.get("name")) for t in item.get("tools") or [] if isinstance(t, dict)]
        return Message(role="tool", tool_call_id=call_id, content=f"Tools loaded: {', '.join(found) or 'none'}.")
    output = item.get("output")
    text = (
        output
        if isinstance(output, str)
        else "".join(p.text for p in _parts(output, f"{param}.output", ("input_text",)))
    )
    return Message(role="tool", tool_call_id=call_id, content=text)


def input_messages(value: str | list[Any]) -> list[Message]:
    """The `input` as chat messages: a function call joins the assistant turn before it."""
    if isinstance(value, str):
        return [Message(role="user", content=value)]
    messages: list[Message] = []
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if isinstance(item, str):  # a bare string in the list is a user turn
            messages.append(Message(role="user", content=item))
            continue
        if not isinstance(item, dict):
            raise _bad(param, "must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, param))
        elif kind in ("function_call", "custom_tool_call", "tool_search_call"):
            call = _call(item, param)
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":
                last.tool_calls = [*(last.tool_calls or []), call]
                if not last.content:
                    last.content = None
            else:
                messages.append(Message(role="assistant", content=None, tool_calls=[call]))
        elif kind in ("function_call_output", "custom_tool_call_output", "tool_search_output"):
            messages.append(_output(item, param))
        elif kind == "reasoning":  # an earlier turn's reasoning: not part of the prompt (as chat models are sent)
            continue
        else:
            raise BadRequest(
                f"input item type {kind!r} at '{param}.type' is not supported; send message, function_call, "
                "function_call_output, custom_tool_call, custom_tool_call_output, tool_search_call, tool_search_output "
                "or reasoning items",
                param=f"{param}.type",
                code="unsupported_input",
            )
    if not messages:
        raise _bad("input", "must not be empty")
    return messages


# -- the request --------------------------------------------------------------------------------


def _response_format(text: TextConfig | None) -> ResponseFormat | None:
    fmt = text.format if text else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return ResponseFormat(type="json_object")
    if fmt.schema_ is None:
        raise _bad("text.format.schema", "a 'json_schema' format needs a 'schema'")
    spec = JsonSchemaSpec(
        name=fmt.name or "response", schema=fmt.schema_, description=fmt.description, strict=fmt.strict
    )
    return ResponseFormat(type="json_schema", json_schema=spec)


def to_chat_request(req: ResponsesRequest, history: list[Message] | None = None) -> ResponsesChat:
    """The chat request for `req`: instructions first, then the stored `history`, then this input."""
    try:
        return _chat_request(req, history or [])
    except ValidationError as exc:  # what the checks here missed still names a field
        raise describe_validation_error(exc) from None


def _chat_request(req: ResponsesRequest, history: list[Message]) -> ResponsesChat:
    messages = [Message(role="system", content=req.instructions)] if req.instructions else []
    messages += [m.model_copy() for m in history]
    messages += input_messages(req.input)
    tools, names = chat_tools(req.tools, req.input)
    extra: dict[str, Any] = {}
    if req.parallel_tool_calls is not None and tools:
        extra["parallel_tool_calls"] = req.parallel_tool_calls
    if req.reasoning is not None and req.reasoning.effort is not None:
        extra["reasoning_effort"] = req.reasoning.effort
    chat = ResponsesChat(
        model=req.model,
        messages=messages,
        max_tokens=req.max_output_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        stream=req.stream,
        tools=tools,
        tool_choice=chat_tool_choice(req.tool_choice, tools),
        response_format=_response_format(req.text),
        user=req.user,
        **extra,
    )
    chat._names = names
    return chat
