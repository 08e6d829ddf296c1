"""What a Messages API request means, checked before it is translated: every problem is a 400 naming its field.

Pydantic has checked the shape (`anthropic_models`); this checks what depends on a block's type or on
other fields: a `tool_result` names the `tool_use` it answers, a forced tool exists, a block fits its
role. Fields the gateway cannot honour are refused here, never dropped (see the README's `/v1/messages`).
"""

from __future__ import annotations

from typing import Any

from interlock.errors import BadRequest
from interlock.translate.anthropic_models import AnthropicBlock, AnthropicPrompt, AnthropicRequest
from interlock.types.base import MAX_JSON_DEPTH, check_depth

MAX_STOP_SEQUENCES = 4  # what the OpenAI-shaped chat request behind the gateway takes
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")

# Anthropic features the gateway cannot honour, and why.
_REFUSED = {
    "mcp_servers": "the gateway does not connect models to MCP servers on /v1/messages",
    "container": "the gateway runs no code-execution containers",
}


def invalid(param: str, problem: str, code: str = "invalid_value") -> BadRequest:
    """A 400 for `param`."""
    return BadRequest(f"invalid '{param}': {problem}", param=param, code=code)


def required(param: str, why: str) -> BadRequest:
    """A 400 for a missing `param`."""
    return BadRequest(f"'{param}' is required: {why}", param=param, code="missing_field")


def unsupported(param: str, why: str) -> BadRequest:
    """A 400 for something the gateway cannot do."""
    return BadRequest(f"'{param}' is not supported: {why}", param=param, code="unsupported_parameter")


def check_prompt(req: AnthropicPrompt) -> None:
    """Raise a 400 for the first problem in the prompt (messages, system, tools, tool_choice, thinking, output)."""
    for name, why in _REFUSED.items():
        if getattr(req, name, None) is not None:
            raise unsupported(name, why)
    _check_thinking(req)
    _check_context_management(req)
    _check_output_config(req)
    for i, block in enumerate(req.system or []):
        if block.type != "text" or block.text is None:
            raise invalid(f"system.{i}", "the system prompt takes text blocks only")
    last = len(req.messages) - 1
    for i, message in enumerate(req.messages):
        where = f"messages.{i}.content"
        # Only a final assistant message (a prefill) may be empty, as on Anthropic's API.
        if not message.content and not (i == last and message.role == "assistant"):
            raise invalid(where, "a message needs at least one content block")
        for j, block in enumerate(message.content):
            _check_block(block, message.role, f"{where}.{j}")
    _check_tools(req)


def check_request(req: AnthropicRequest) -> None:
    """Raise a 400 for the first problem in a Messages API request."""
    check_prompt(req)
    budget = req.thinking.budget_tokens if req.thinking is not None else None
    if budget is not None and budget >= req.max_tokens:
        raise invalid("thinking.budget_tokens", f"must be less than max_tokens ({req.max_tokens}), got {budget}")
    stops = req.stop_sequences or []
    if len(stops) > MAX_STOP_SEQUENCES:
        raise invalid(
            "stop_sequences",
            f"at most {MAX_STOP_SEQUENCES} stop sequences are supported here, got {len(stops)}",
        )
    for k, stop in enumerate(stops):
        if not stop.strip():
            raise invalid(f"stop_sequences.{k}", "a stop sequence must contain non-whitespace characters")


def _check_block(block: AnthropicBlock, role: str, where: str) -> None:
    kind = block.type
    if role == "system" and kind != "text":
        raise invalid(f"{where}.type", "a system message takes text blocks only")
    if kind == "text":
        if block.text is None:
            raise required(f"{where}.text", "a text block carries its text")
    elif kind == "image":
        if role != "user":
            raise invalid(f"{where}.type", "only user messages may carry images")
        _check_image(block, where)
    elif kind == "document":
        raise unsupported(f"{where}.type", "the gateway's chat models take text and images, not documents")
    elif kind == "tool_use":
        if role != "assistant":
            raise invalid(f"{where}.type", "tool_use blocks belong in assistant messages")
        for name in ("id", "name"):
            if not getattr(block, name):
                raise required(f"{where}.{name}", "a tool_use block names the call and the tool")
        if block.input is None:
            raise required(f"{where}.input", "a tool_use block carries the tool's input object")
        _check_depth(block.input, f"{where}.input")
    elif kind == "tool_result":
        if role != "user":
            raise invalid(f"{where}.type", "tool_result blocks belong in user messages")
        if not block.tool_use_id:
            raise required(f"{where}.tool_use_id", "a tool_result block names the tool_use it answers")
        for k, part in enumerate(block.content or []):
            if part.type == "image":
                _check_image(part, f"{where}.content.{k}")
            elif part.type != "text" or part.text is None:
                raise unsupported(f"{where}.content.{k}", "a tool result may hold text and image blocks only")
    elif role != "assistant":  # thinking, redacted_thinking
        raise invalid(f"{where}.type", f"{kind} blocks belong in assistant messages")


def _check_image(block: AnthropicBlock, where: str) -> None:
    source = block.source
    if source is None:
        raise required(f"{where}.source", "an image block carries its source")
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") not in IMAGE_TYPES:
            raise invalid(f"{where}.source.media_type", f"must be one of {', '.join(IMAGE_TYPES)}")
        if not isinstance(source.get("data"), str) or not source["data"]:
            raise required(f"{where}.source.data", "a base64 image carries its data")
    elif kind == "url":
        if not isinstance(source.get("url"), str) or not source["url"]:
            raise required(f"{where}.source.url", "a url image carries its url")
    elif kind == "file":
        raise unsupported(f"{where}.source.type", "the gateway has no Files API; send the image as base64 or url")
    else:
        raise invalid(f"{where}.source.type", "must be 'base64' or 'url'")


def _check_thinking(req: AnthropicPrompt) -> None:
    thinking = req.thinking
    if thinking is None:
        return
    if thinking.type == "enabled":
        if thinking.budget_tokens is None:
            raise required("thinking.budget_tokens", "enabled thinking sets a budget of at least 1024 tokens")
        if thinking.budget_tokens < 1024:
            raise invalid("thinking.budget_tokens", f"must be at least 1024, got {thinking.budget_tokens}")
    elif thinking.budget_tokens is not None:
        raise invalid("thinking.budget_tokens", f"only enabled thinking takes a budget, not '{thinking.type}'")


def _check_context_management(req: AnthropicPrompt) -> None:
    """Earlier turns' thinking never reaches the model (`anthropic._assistant_message`), so clearing it is what
    the gateway does anyway; any other edit (clearing tool results) it does not make, so it is refused."""
    for i, edit in enumerate(req.context_management.edits if req.context_management else []):
        if not edit.type.startswith("clear_thinking_"):
            raise unsupported(
                f"context_management.edits.{i}.type",
                f"the gateway does not make '{edit.type}' edits; only clear_thinking edits are accepted (earlier "
                "turns' thinking is never sent to the model)",
            )


def _check_output_config(req: AnthropicPrompt) -> None:
    config = req.output_config
    if config is None:
        return
    if config.task_budget is not None:
        raise unsupported("output_config.task_budget", "the gateway does not budget tokens across a task's turns")
    if config.format is not None:
        _check_depth(config.format.schema_, "output_config.format.schema")


def _check_tools(req: AnthropicPrompt) -> None:
    names: set[str] = set()
    for i, tool in enumerate(req.tools or []):
        if tool.type not in (None, "custom"):
            raise unsupported(
                f"tools.{i}.type", f"'{tool.type}' is a server tool; the gateway offers client tools only"
            )
        _check_depth(tool.input_schema, f"tools.{i}.input_schema")
        if tool.name in names:
            raise invalid(f"tools.{i}.name", f"two tools are named '{tool.name}'")
        names.add(tool.name)
    choice = req.tool_choice
    if choice is None or choice.type in ("auto", "none"):
        return
    if not names:
        raise invalid("tool_choice", f"tool_choice of type '{choice.type}' needs 'tools'")
    if choice.type == "tool":
        if not choice.name:
            raise required("tool_choice.name", "tool_choice of type 'tool' names the tool to call")
        if choice.name not in names:
            raise invalid("tool_choice.name", f"no tool named '{choice.name}' in 'tools'")


def _check_depth(value: Any, where: str) -> None:
    """A 400 for JSON the gateway forwards that nests deeper than every stage can serialise."""
    try:
        check_depth(value, where)
    except ValueError:
        raise invalid(where, f"nests deeper than {MAX_JSON_DEPTH} levels") from None
