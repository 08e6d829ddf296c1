"""What the embedded model takes from a chat request beyond its messages: tools and sampling fields.

Each reader validates what it reads (a 400 naming the field, never a 5xx), and a field the engine does not
implement is refused rather than ignored, so a client relying on it finds out.
"""

from __future__ import annotations

from typing import Literal

from interlock.engines.llamacpp import grammar
from interlock.errors import BadRequest
from interlock.types import ChatRequest, NamedToolChoice

ToolMode = Literal["none", "auto", "required"]


def tool_choice(request: ChatRequest) -> tuple[ToolMode, list[grammar.ToolSpec], str | None]:
    """The tool mode, the tools the model may call, and the name of a forced function."""
    if not request.tools or request.tool_choice == "none":
        return "none", [], None
    specs = [grammar.ToolSpec(t.function.name, t.function.description, t.function.parameters) for t in request.tools]
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        name = choice.function["name"]
        return "required", [s for s in specs if s.name == name], name
    return ("required" if choice == "required" else "auto"), specs, None


def parallel_calls(request: ChatRequest, forced: str | None) -> bool:
    """Whether an answer may hold several tool calls: only when the client sets `parallel_tool_calls: true`
    and no one function is forced.

    OpenAI's default is true, but a model as small as the embedded one, allowed more calls, tends to repeat
    its call until `max_tokens` cuts it off; one call per answer is what it does reliably, so that stays the
    default here (README, "Tools on the local model")."""
    value = (request.model_extra or {}).get("parallel_tool_calls")
    if value is not None and not isinstance(value, bool):
        raise BadRequest(
            "'parallel_tool_calls' must be true or false", code="invalid_type", param="parallel_tool_calls"
        )
    return forced is None and value is True


# Fields the embedded engine does not implement: refused, never ignored (a client relying on them must know).
_UNSUPPORTED = ("logprobs", "top_logprobs")


def refuse_unsupported(request: ChatRequest) -> None:
    """A 400 naming the first field of `_UNSUPPORTED` the request sets, or a reasoning effort (the model does
    not reason; "none" asks for no reasoning, which it honours)."""
    extra = request.model_extra or {}
    if extra.get("reasoning_effort") not in (None, "none"):
        raise BadRequest(
            "'reasoning_effort' is not supported by the local model, which does not reason (it comes from "
            "'reasoning.effort' on /v1/responses, 'thinking' or 'output_config.effort' on /v1/messages); "
            "remove it or use a reasoning model",
            code="unsupported_parameter",
            param="reasoning_effort",
        )
    for name in _UNSUPPORTED:
        value = extra.get(name)
        if value not in (None, False, {}):
            raise BadRequest(
                f"'{name}' is not supported by the local model; remove it or use a remote model",
                code="unsupported_parameter",
                param=name,
            )


def top_k_of(request: ChatRequest) -> int:
    """vLLM's `top_k` (also what `/v1/messages` sends for Anthropic's): sample among the k likeliest tokens;
    0 or -1 (vLLM's "off") is off."""
    value = (request.model_extra or {}).get("top_k")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < -1 or value > 100_000:
        raise BadRequest("'top_k' must be a whole number of tokens (0 or -1: off)", code="invalid_value", param="top_k")
    return max(value, 0)


def min_p_of(request: ChatRequest) -> float:
    """vLLM's `min_p`: drop tokens less likely than this fraction of the likeliest; 0 is off."""
    value = (request.model_extra or {}).get("min_p")
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise BadRequest("'min_p' must be a number in [0, 1]", code="invalid_value", param="min_p")
    return float(value)


def logit_bias_of(request: ChatRequest) -> tuple[tuple[int, float], ...]:
    """OpenAI's `logit_bias`: token ids (as strings) to a bias in [-100, 100]; ids beyond the model's
    vocabulary are refused by the engine."""
    value = (request.model_extra or {}).get("logit_bias")
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise BadRequest(
            "'logit_bias' must be an object of token ids to numbers", code="invalid_type", param="logit_bias"
        )
    if len(value) > 300:
        raise BadRequest("'logit_bias' may name at most 300 tokens", code="invalid_value", param="logit_bias")
    out = []
    for key, bias in value.items():
        if not (isinstance(key, str) and 0 < len(key) <= 9 and key.isascii() and key.isdigit()):
            raise BadRequest(
                f"'logit_bias' key {str(key)[:20]!r} is not a token id", code="invalid_value", param="logit_bias"
            )
        if isinstance(bias, bool) or not isinstance(bias, int | float) or not -100 <= bias <= 100:
            raise BadRequest(
                f"'logit_bias' value for token {key} must be a number in [-100, 100]",
                code="invalid_value",
                param="logit_bias",
            )
        out.append((int(key), float(bias)))
    return tuple(out)
