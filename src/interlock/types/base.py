"""What every wire type shares: strict scalars, bounded nesting, open and relayed models."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Strict, model_validator

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]

# OpenAI refuses `true` where a number is expected; pydantic's lax mode would read it as 1.
StrictInt = Annotated[int, Strict()]
StrictFloat = Annotated[float, Strict()]  # an integer is still a valid float
StrictBool = Annotated[bool, Strict()]


MAX_JSON_DEPTH = 64
"""How deep a client's free-form JSON (pass-through fields, tool parameters, schemas) may nest.

Every stage re-serialises the request (the cache key, the budget bound, the upstream body) and orjson
stops at 255 levels, so deeper input is a 400 here rather than a failure further down.
"""


# How many items a request's lists may hold. A list of a million wrong items made pydantic build a
# million errors: a 4 MB body held the event loop for 11 s (tests/api/test_hostile_input.py keeps it bounded).
# A length bound is checked before the items are; `fail_fast` stops a list at its first bad item.
MAX_MESSAGES = 100_000  # Anthropic's own limit per request
MAX_PARTS = 10_000  # content parts or blocks of one message
MAX_TOOLS = 10_000  # tools offered, or tool calls in one message
MAX_INPUTS = 2_048  # embedding or completion inputs of one request (OpenAI's limit)
MAX_TOKEN_IDS = 1_000_000  # token ids in one input


_J = TypeVar("_J")


def check_depth(value: _J, where: str) -> _J:
    """`value`, or a ValueError if its dicts and lists nest more than MAX_JSON_DEPTH levels."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"{where} nests deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return value


class _Open(BaseModel):
    """Wire objects keep fields we do not model, so newer clients' parameters pass through."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _bound_extra(self) -> Self:
        extra = self.__pydantic_extra__
        if extra:
            for name, value in extra.items():
                check_depth(value, f"'{name}'")
        return self


class _Relayed(BaseModel):
    """Answer objects keep fields we do not model, so what an upstream adds reaches the client.

    For example `reasoning_content` in a delta (DeepSeek, vLLM's reasoning parsers), `system_fingerprint`,
    `logprobs` or `usage.prompt_tokens_details`.
    """

    model_config = ConfigDict(extra="allow")
