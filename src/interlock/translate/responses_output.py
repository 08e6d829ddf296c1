"""Chat answers as Responses objects, and the stored conversation a follow-up turn continues from."""

from __future__ import annotations

from typing import Any

import orjson

from interlock.translate.responses import ResponsesRequest
from interlock.translate.responses_tools import (
    SEARCH,
    ToolNames,
    custom_arguments,
    custom_input,
    echo,
    search_arguments,
)
from interlock.types import ChatResponse, FunctionCall, Message, ToolCall, Usage, reasoning_text


def echo_fields(req: ResponsesRequest) -> dict[str, Any]:
    """The request's settings as a Responses object repeats them."""
    text: dict[str, Any] = {"format": {"type": "text"}}
    fmt = req.text.format if req.text else None
    if fmt is not None:
        text = {"format": fmt.model_dump(by_alias=True, exclude_none=True)}
    choice: Any = req.tool_choice or "auto"
    reasoning = req.reasoning
    return {
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "metadata": req.metadata or {},
        "parallel_tool_calls": req.parallel_tool_calls if req.parallel_tool_calls is not None else True,
        "previous_response_id": req.previous_response_id,
        "reasoning": {
            "effort": reasoning.effort if reasoning else None,
            "summary": (reasoning.summary or reasoning.generate_summary) if reasoning else None,
        },
        "store": req.store,
        "temperature": req.temperature,
        "text": text,
        "tool_choice": choice,
        "tools": echo(req.tools),
        "top_p": req.top_p,
        "truncation": "disabled",
        "user": req.user,
    }


def skeleton(req: ResponsesRequest, response_id: str, created_at: int) -> dict[str, Any]:
    """A Responses object in progress, with no output yet."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "model": req.model,
        "output": [],
        "usage": None,
        **echo_fields(req),
    }


def usage_of(usage: Usage | None) -> dict[str, Any] | None:
    """Chat usage as Responses usage."""
    if usage is None:
        return None
    details = (usage.model_extra or {}).get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    out_details = (usage.model_extra or {}).get("completion_tokens_details")
    reasoning = out_details.get("reasoning_tokens") if isinstance(out_details, dict) else None
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": int(cached or 0), "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": int(reasoning or 0)},
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


def finish_status(finish: str | None) -> tuple[str, dict[str, str] | None]:
    """The Responses status and incomplete details for a chat finish reason."""
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def message_item(item_id: str, text: str, status: str = "completed", refusal: str | None = None) -> dict[str, Any]:
    """An assistant message output item."""
    content: list[dict[str, Any]] = []
    if text or refusal is None:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def wants_summary(req: ResponsesRequest) -> bool:
    """Whether the request asked for a reasoning summary (`reasoning.summary`, or its older name)."""
    return req.reasoning is not None and (req.reasoning.summary or req.reasoning.generate_summary) is not None


def reasoning_item(item_id: str, text: str, status: str = "completed", summary: bool = False) -> dict[str, Any]:
    """A reasoning output item: the model's reasoning as `reasoning_text` content, nothing encrypted.

    The gateway's models write no separate summary; when the client asked for one (`summary`), the
    reasoning text stands as the summary too, so a client that shows only summaries (Codex, the Vercel AI
    SDK) shows it."""
    done = status == "completed"
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if summary and (text or done) else [],
        "content": [{"type": "reasoning_text", "text": text}] if text or done else [],
        "encrypted_content": None,
        "status": status,
    }


def call_item(
    suffix: str, call_id: str, name: str, arguments: str, status: str = "completed", names: ToolNames | None = None
) -> dict[str, Any]:
    """A call's output item, by what `name` (the chat call's) names: a `function_call` (id `fc_<suffix>`), a
    `custom_tool_call` with the `input` (`ctc_`) or a client-run `tool_search_call` (`tsc_`); `names` also
    splits off a namespace."""
    kind = names.kind(name) if names is not None else "function"
    if kind == "tool_search":
        return {
            "id": f"tsc_{suffix}",
            "type": "tool_search_call",
            "call_id": call_id,
            "arguments": search_arguments(arguments),
            "execution": "client",
            "status": status,
        }
    name, namespace = names.split(name) if names is not None else (name, None)
    item: dict[str, Any] = {"id": f"{'ctc' if kind == 'custom' else 'fc'}_{suffix}", "call_id": call_id, "name": name}
    if kind == "custom":
        item |= {"type": "custom_tool_call", "input": custom_input(arguments) if arguments else ""}
    else:
        item |= {"type": "function_call", "arguments": arguments}
    item["status"] = status
    if namespace is not None:
        item["namespace"] = namespace
    return item


def to_response(
    resp: ChatResponse, req: ResponsesRequest, response_id: str, created_at: int, names: ToolNames
) -> dict[str, Any]:
    """A chat completion as a Responses object (`names`: the request's tools, `chat_tools`)."""
    suffix = response_id.removeprefix("resp_")
    choice = resp.choices[0] if resp.choices else None
    output: list[dict[str, Any]] = []
    if choice is not None:
        msg = choice.message
        thought = reasoning_text(msg.model_extra)
        if thought:
            output.append(reasoning_item(f"rs_{suffix}", thought, summary=wants_summary(req)))
        if msg.content or msg.refusal or not msg.tool_calls:
            output.append(message_item(f"msg_{suffix}", msg.content or "", refusal=msg.refusal))
        for n, call in enumerate(msg.tool_calls or []):
            output.append(call_item(f"{suffix}_{n}", call.id, call.function.name, call.function.arguments, names=names))
    status, incomplete = finish_status(choice.finish_reason if choice else None)
    return {
        **skeleton(req, response_id, created_at),
        "status": status,
        "incomplete_details": incomplete,
        "output": output,
        "usage": usage_of(resp.usage),
    }


def output_messages(output: list[dict[str, Any]]) -> list[Message]:
    """A Responses object's output as the chat messages a follow-up turn continues from (reasoning left out)."""
    text = "".join(
        p.get("text", "") for item in output if item["type"] == "message" for p in item["content"] if "text" in p
    )
    calls = [_chat_call(i) for i in output if i["type"] in ("function_call", "custom_tool_call", "tool_search_call")]
    return [Message(role="assistant", content=text or (None if calls else ""), tool_calls=calls or None)]


def _chat_call(item: dict[str, Any]) -> ToolCall:
    if item["type"] == "tool_search_call":
        return ToolCall(
            id=item["call_id"], function=FunctionCall(name=SEARCH, arguments=orjson.dumps(item["arguments"]).decode())
        )
    name = ToolNames().chat_name(item["name"], item.get("namespace"))
    arguments = custom_arguments(item["input"]) if item["type"] == "custom_tool_call" else item["arguments"]
    return ToolCall(id=item["call_id"], function=FunctionCall(name=name, arguments=arguments))


def dump_messages(messages: list[Message]) -> bytes:
    """Chat messages as stored JSON."""
    return orjson.dumps([m.model_dump(exclude_none=True) for m in messages])


def load_messages(raw: bytes | str) -> list[Message]:
    """Stored chat messages."""
    return [Message.model_validate(m) for m in orjson.loads(raw)]
