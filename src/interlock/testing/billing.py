"""Billing like a real model, for tests: the most tokens any byte-level tokenizer can make of a request.

The billing stub (`stub-bill` in `stub_upstream`) and the budget property test use this as the
independent measure that the gateway's reservation bound (`governance.bounds`) must never fall below.
"""

from __future__ import annotations

from typing import Any

TEMPLATE_PER_MESSAGE = 6  # what a real chat template adds per message (below the gateway's allowance)
TEMPLATE_PER_REQUEST = 10


def billable_text(value: Any) -> int:
    """UTF-8 bytes of every string (keys included) in a JSON value."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, dict):
        return sum(len(str(k).encode()) + billable_text(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(billable_text(v) for v in value)
    return 0 if value is None or isinstance(value, bool) else len(str(value).encode())


_NOT_PROMPT = ("model", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p")


def prompt_tokens(body: dict[str, Any]) -> int:
    """The prompt tokens a byte-level model bills for an OpenAI-style request body it received."""
    prompt = {k: v for k, v in body.items() if k not in _NOT_PROMPT}
    messages = body.get("messages")
    count = len(messages) if isinstance(messages, list) else 1
    return billable_text(prompt) + TEMPLATE_PER_MESSAGE * count + TEMPLATE_PER_REQUEST
