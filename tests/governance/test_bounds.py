"""The reservation bound holds for any request: never below what a byte-level model bills for what it is sent.

`chat_prompt_bound` is compared with an independent measure: the UTF-8 bytes of every string in the body
the OpenAI-compatible provider actually sends (`chat_payload`), plus a real template's overhead
(`testing.billing`), which is what the `stub-bill` upstream charges.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.governance.bounds import DEFAULT_IMAGE_TOKENS, chat_prompt_bound
from interlock.testing.billing import prompt_tokens
from interlock.translate.openai import chat_payload
from interlock.types import ChatRequest

text = st.text(st.characters(codec="utf-8"), max_size=200)
name = st.from_regex(r"[a-zA-Z0-9_-]{1,20}", fullmatch=True)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(name, inner, max_size=4),
    max_leaves=20,
)
tool_call = st.builds(
    lambda i, n, args: {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": args}},
    st.integers(0, 999),
    name,
    text,
)
message = st.one_of(
    st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["system", "user", "developer"]), text),
    st.builds(
        lambda parts: {"role": "user", "content": [{"type": "text", "text": p} for p in parts]},
        st.lists(text, max_size=3),
    ),
    st.builds(
        lambda c, calls: {"role": "assistant", "content": c, "tool_calls": calls},
        st.none() | text,
        st.lists(tool_call, min_size=1, max_size=3),
    ),
    st.builds(lambda i, c: {"role": "tool", "tool_call_id": f"call_{i}", "content": c}, st.integers(0, 999), text),
    st.builds(lambda c, extra: {"role": "user", "content": c, "name": extra}, text, name),
)
tool = st.builds(
    lambda n, d, props: {
        "type": "function",
        "function": {"name": n, "description": d, "parameters": {"type": "object", "properties": props}},
    },
    name,
    text,
    st.dictionaries(name, json_value, max_size=3),
)
response_format = st.one_of(
    st.none(),
    st.just({"type": "json_object"}),
    st.builds(
        lambda n, schema: {"type": "json_schema", "json_schema": {"name": n, "schema": schema}},
        name,
        st.dictionaries(name, json_value, max_size=3),
    ),
)
extras = st.dictionaries(
    st.sampled_from(["prediction", "logit_bias", "reasoning_effort", "newer_field"]), json_value, max_size=2
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "messages": draw(st.lists(message, min_size=1, max_size=6))}
    tools = draw(st.lists(tool, max_size=3, unique_by=lambda t: t["function"]["name"]))
    if tools:
        body["tools"] = tools
    fmt = draw(response_format)
    if fmt is not None:
        body["response_format"] = fmt
    body.update(draw(extras))
    return body


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_the_bound_is_never_below_what_the_upstream_bills(body: dict[str, Any]) -> None:
    request = ChatRequest.model_validate(body)
    sent = chat_payload(request, "upstream-model", stream=False)
    assert chat_prompt_bound(request) >= prompt_tokens(sent)


def test_tool_call_arguments_count_in_full() -> None:
    """The finding: 20 KB of tool-call arguments in the history were not reserved at all."""
    args = '{"rows": "' + "x" * 20_000 + '"}'
    request = ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "dump", "arguments": args}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            ],
        }
    )
    assert chat_prompt_bound(request) > 20_000


def test_an_image_counts_its_worst_case_not_its_bytes() -> None:
    data = "data:image/png;base64," + "A" * 100_000
    with_image = ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is it"},
                        {"type": "image_url", "image_url": {"url": data}},
                    ],
                }
            ],
        }
    )
    without = ChatRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "what is it"}]}]}
    )
    assert chat_prompt_bound(with_image) == chat_prompt_bound(without) + DEFAULT_IMAGE_TOKENS
