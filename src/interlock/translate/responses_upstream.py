"""The gateway's chat types <-> an upstream's own Responses API (`responses_api = "native"`), as pure functions.

A request to `/v1/responses` runs through the gateway as a `ResponsesChat` (a `ChatRequest` that
remembers its wire), so every hook sees and may rewrite it as it does chat. A deployment whose
upstream serves `POST /v1/responses` itself is then called there: `responses_payload` turns the
(possibly rewritten) chat request back into a Responses body, always with `store: false` and the
whole conversation as `input` (the gateway keeps the response store, so the budget bound has seen
every token the upstream may bill), and `parse_response` / `ResponsesEventReader` turn the upstream's
Responses object or event stream back into the `ChatResponse` / `ChatChunk`s the rest of the pipeline
and the Responses wire already handle.
"""

from __future__ import annotations

from typing import Any

import orjson

from interlock.errors import BadRequest, UpstreamError
from interlock.types import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCall,
    ImagePart,
    Message,
    NamedToolChoice,
    ToolCall,
    ToolCallDelta,
    Usage,
)

# Chat parameters the Responses API has no field for: a request that sets them cannot go there.
NOT_IN_RESPONSES = ("stop", "seed", "presence_penalty", "frequency_penalty")


# -- the request ------------------------------------------------------------------------------


def _input_content(message: Message) -> list[dict[str, Any]]:
    if isinstance(message.content, list):
        parts: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, ImagePart):
                url = part.image_url.get("url", "")
                parts.append({"type": "input_image", "image_url": url, "detail": part.image_url.get("detail", "auto")})
            else:
                parts.append({"type": "input_text", "text": part.text})
        return parts
    return [{"type": "input_text", "text": message.text()}]


def input_items(messages: list[Message]) -> list[dict[str, Any]]:
    """Chat messages as Responses input items (the inverse of `responses.input_messages`)."""
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            items.append({"type": "function_call_output", "call_id": m.tool_call_id, "output": m.text()})
        elif m.role == "assistant":
            text = m.text()
            if text or not m.tool_calls:
                content = [{"type": "output_text", "text": text, "annotations": []}]
                items.append({"type": "message", "role": "assistant", "content": content})
            for call in m.tool_calls or []:
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.id,
                        "name": call.function.name,
                        "arguments": call.function.arguments,
                    }
                )
        else:
            items.append({"type": "message", "role": m.role, "content": _input_content(m)})
    return items


def _text_format(req: ChatRequest) -> dict[str, Any] | None:
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object" or fmt.json_schema is None:
        return {"format": {"type": "json_object"}}
    spec = fmt.json_schema
    out: dict[str, Any] = {"type": "json_schema", "name": spec.name, "schema": spec.schema_}
    if spec.description is not None:
        out["description"] = spec.description
    if spec.strict is not None:
        out["strict"] = spec.strict
    return {"format": out}


def responses_payload(req: ChatRequest, upstream_model: str, *, stream: bool) -> dict[str, Any]:
    """The upstream `POST /v1/responses` body: the whole conversation, `store: false`, the upstream's model."""
    for name in NOT_IN_RESPONSES:
        if getattr(req, name) is not None:
            raise BadRequest(
                f"'{name}' cannot be sent to an upstream's Responses API", param=name, code="unsupported_parameter"
            )
    messages = req.messages
    body: dict[str, Any] = {"model": upstream_model, "store": False}
    first = messages[0]
    if first.role == "system" and isinstance(first.content, str) and len(messages) > 1:
        body["instructions"], messages = first.content, messages[1:]
    body["input"] = input_items(messages)
    if req.tools:
        body["tools"] = [
            {"type": "function", **t.function.model_dump(exclude_none=True, by_alias=True)} for t in req.tools
        ]
    choice = req.tool_choice
    if isinstance(choice, NamedToolChoice):
        body["tool_choice"] = {"type": "function", "name": choice.function["name"]}
    elif choice is not None:
        body["tool_choice"] = choice
    text = _text_format(req)
    if text is not None:
        body["text"] = text
    optional = {
        "max_output_tokens": req.output_limit(),  # the budget bound's cap, when it lowered the client's
        "temperature": req.temperature,
        "top_p": req.top_p,
        "user": req.user,
        "metadata": req.metadata,
        "parallel_tool_calls": (req.model_extra or {}).get("parallel_tool_calls"),
    }
    body.update((k, v) for k, v in optional.items() if v is not None)
    effort = (req.model_extra or {}).get("reasoning_effort")
    if effort is not None:
        body["reasoning"] = {"effort": effort}
    if stream:
        body["stream"] = True
    return body


# -- the answer -------------------------------------------------------------------------------


def usage_from(raw: Any) -> Usage | None:
    """Responses usage as chat usage (cached and reasoning tokens kept in the details OpenAI uses)."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = int(raw.get("input_tokens") or 0), int(raw.get("output_tokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(raw.get("total_tokens") or 0) or prompt + completion,
    }
    details, out_details = raw.get("input_tokens_details"), raw.get("output_tokens_details")
    if isinstance(details, dict) and details.get("cached_tokens"):
        out["prompt_tokens_details"] = {"cached_tokens": int(details["cached_tokens"])}
    if isinstance(out_details, dict) and out_details.get("reasoning_tokens"):
        out["completion_tokens_details"] = {"reasoning_tokens": int(out_details["reasoning_tokens"])}
    return Usage.model_validate(out)


def finish_reason(status: Any, incomplete: Any, calls: bool) -> str:
    """The chat finish reason of a Responses status; a failed or unfinished response is an upstream error."""
    if status == "completed":
        return "tool_calls" if calls else "stop"
    if status == "incomplete":
        reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
        return "content_filter" if reason == "content_filter" else "length"
    raise UpstreamError(f"upstream response ended with status {str(status)[:50]!r}", code="bad_upstream_response")


def _failure(data: dict[str, Any]) -> UpstreamError:
    error = data.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    return UpstreamError(f"upstream response failed: {str(message or 'no details')[:500]}")


def _reasoning_texts(item: dict[str, Any]) -> list[str]:
    """A reasoning item's text: its `reasoning_text` content (open-weight models), else its summaries (OpenAI's
    own models, which show no raw reasoning); the encrypted content stays behind (the gateway stores the turn)."""
    parts = [p for p in item.get("content") or [] if isinstance(p, dict) and p.get("type") == "reasoning_text"]
    if not parts:
        parts = [p for p in item.get("summary") or [] if isinstance(p, dict) and p.get("type") == "summary_text"]
    return [str(p.get("text", "")) for p in parts if p.get("text")]


def parse_response(raw: bytes, alias: str) -> ChatResponse:
    """An upstream Responses object as a chat completion; garbage or a failed response is a 502 that says so."""
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("output"), list):
            raise TypeError("not a Responses object")
        if data.get("status") == "failed":
            raise _failure(data)
        text: list[str] = []
        refusal: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        for item in data["output"]:
            if item.get("type") == "reasoning":
                thoughts.extend(_reasoning_texts(item))
            elif item.get("type") == "message":
                for part in item.get("content") or []:
                    if part.get("type") == "output_text":
                        text.append(str(part.get("text", "")))
                    elif part.get("type") == "refusal":
                        refusal.append(str(part.get("refusal", "")))
            elif item.get("type") == "function_call":
                function = FunctionCall(name=str(item["name"]), arguments=str(item.get("arguments", "")))
                calls.append(ToolCall(id=str(item["call_id"]), function=function))
        finish = finish_reason(data.get("status"), data.get("incomplete_details"), bool(calls))
        message = AssistantMessage(
            content="".join(text) or (None if calls or refusal else ""),
            tool_calls=calls or None,
            refusal="".join(refusal) or None,
            **({"reasoning_content": "\n\n".join(thoughts)} if thoughts else {}),
        )
        return ChatResponse(
            id=str(data.get("id", "resp")),
            created=int(data.get("created_at") or 0),
            model=alias,
            choices=[Choice(message=message, finish_reason=finish)],
            usage=usage_from(data.get("usage")),
        )
    except UpstreamError:
        raise
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(
            f"upstream sent an invalid Responses object: {type(exc).__name__}", code="bad_upstream_response"
        ) from None


class ResponsesEventReader:
    """An upstream's Responses event stream as chat chunks; `done` once `response.completed` (or incomplete) came.

    Text deltas become content deltas, each function call item a tool call (its index in order of
    appearance), the end a chunk with the finish reason and the usage `response.completed` carries.
    `response.failed` and `error` events raise an upstream error. Events that add nothing a chat
    chunk carries (`content_part.*`, `output_item.done`) are skipped. Reasoning deltas (`reasoning_text`, else
    `reasoning_summary_text`, as `_reasoning_texts` reads a finished item) become `reasoning_content` deltas.
    """

    def __init__(self, alias: str) -> None:
        self._alias = alias
        self._id = "resp"
        self._created = 0
        self._calls: dict[str, int] = {}  # function call item id -> tool call index
        self._streamed: set[str] = set()  # items whose text or arguments came as deltas
        self._raw_reasoning: set[str] = set()  # reasoning items whose own text came (their summaries are skipped)
        self.done = False

    def _chunk(self, delta: Delta | None = None, finish: str | None = None, usage: Usage | None = None) -> ChatChunk:
        choices = [] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish)]
        return ChatChunk(id=self._id, created=self._created, model=self._alias, choices=choices, usage=usage)

    def _call(self, item_id: str, arguments: str) -> ChatChunk | None:
        index = self._calls.get(item_id)
        if index is None or not arguments:
            return None
        call = ToolCallDelta(index=index, function={"arguments": arguments})
        return self._chunk(Delta(tool_calls=[call]))

    def feed(self, data: bytes) -> list[ChatChunk]:
        """The chunks for one event's data; raises UpstreamError for a failure or a malformed event."""
        try:
            event = orjson.loads(data)
            if not isinstance(event, dict):
                raise TypeError("not an object")
            return self._feed(event)
        except UpstreamError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise UpstreamError(
                f"upstream sent a malformed stream event ({type(exc).__name__})", code="bad_upstream_response"
            ) from None

    def _feed(self, event: dict[str, Any]) -> list[ChatChunk]:
        kind = event.get("type")
        item_id = str(event.get("item_id", ""))
        if kind == "response.created":
            response = event.get("response") or {}
            self._id, self._created = str(response.get("id", "resp")), int(response.get("created_at") or 0)
            return [self._chunk(Delta(role="assistant", content=""))]
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            self._streamed.add(item_id)
            return [self._chunk(Delta(content=str(event.get("delta", ""))))] if event.get("delta") else []
        if kind in ("response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
            delta = event.get("delta")
            if not delta or (kind == "response.reasoning_summary_text.delta" and item_id in self._raw_reasoning):
                return []
            if kind == "response.reasoning_text.delta":
                self._raw_reasoning.add(item_id)
            return [self._chunk(Delta.model_validate({"reasoning_content": str(delta)}))]
        if kind == "response.output_text.done" and item_id not in self._streamed:
            return [self._chunk(Delta(content=str(event.get("text", ""))))] if event.get("text") else []
        if kind == "response.output_item.added" and (event.get("item") or {}).get("type") == "function_call":
            item = event["item"]
            index = self._calls[str(item.get("id", ""))] = len(self._calls)
            function = {"name": str(item.get("name", "")), "arguments": ""}
            call = ToolCallDelta(index=index, id=str(item.get("call_id", "")), type="function", function=function)
            return [self._chunk(Delta(tool_calls=[call]))]
        if kind == "response.function_call_arguments.delta":
            self._streamed.add(item_id)
            return [c for c in [self._call(item_id, str(event.get("delta", "")))] if c]
        if kind == "response.function_call_arguments.done" and item_id not in self._streamed:
            return [c for c in [self._call(item_id, str(event.get("arguments", "")))] if c]
        if kind in ("response.completed", "response.incomplete"):
            response = event.get("response") or {}
            finish = finish_reason(response.get("status"), response.get("incomplete_details"), bool(self._calls))
            self.done = True
            return [self._chunk(Delta(), finish, usage_from(response.get("usage")))]
        if kind == "response.failed":
            raise _failure(event.get("response") or {})
        if kind == "error":
            raise UpstreamError(f"upstream error mid-stream: {str(event.get('message') or 'unknown error')[:500]}")
        return []
