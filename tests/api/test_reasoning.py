"""Reasoning models on every surface: the effort a client asks for reaches the model as chat's `reasoning_effort`,
and what the model reasons comes back as a Responses reasoning item or an Anthropic `thinking` block.

The fake provider plays a reasoning model whenever a request carries `reasoning_effort`: its answer carries
`reasoning_content` ("thinking (EFFORT) about: PROMPT"), streamed before the text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from openai.types.responses import ResponseReasoningItem
from starlette.testclient import TestClient

from interlock.store.records import UsageRecord
from tests.api.sdk import in_process_sdk
from tests.api.test_responses import _create, _events

USER = [{"role": "user", "content": "hello"}]


def _sent(client: TestClient) -> Any:
    """The last request the fake provider received."""
    return client.app.state.interlock.providers["echo"].received[-1]  # type: ignore[attr-defined]


def test_responses_reasoning_effort_reaches_the_model_and_its_reasoning_comes_back_as_an_item(
    client: TestClient,
) -> None:
    r = _create(client, input="hi", reasoning={"effort": "low", "summary": "auto"})
    assert (_sent(client).model_extra or {}).get("reasoning_effort") == "low"
    reasoning, message = r.output
    assert message.type == "message"
    assert isinstance(reasoning, ResponseReasoningItem)
    assert reasoning.content is not None and reasoning.content[0].text == "thinking (low) about: hi"
    # A summary was asked for: the gateway's models write none, so the reasoning stands as the summary too.
    assert [(p.type, p.text) for p in reasoning.summary] == [("summary_text", "thinking (low) about: hi")]
    assert reasoning.id.startswith("rs_") and reasoning.encrypted_content is None
    assert r.output_text == "echo: hi"  # the reasoning is not part of the answer's text
    assert r.reasoning is not None and (r.reasoning.effort, r.reasoning.summary) == ("low", "auto")
    unsummarised = _create(client, input="hi", reasoning={"effort": "low"})
    assert unsummarised.output[0].type == "reasoning" and unsummarised.output[0].summary == []
    plain = _create(client, input="hi")
    assert [item.type for item in plain.output] == ["message"]
    assert plain.reasoning is not None and plain.reasoning.effort is None
    assert "reasoning_effort" not in (_sent(client).model_extra or {})


def test_responses_reasoning_streams_as_reasoning_text_events_before_the_message(client: TestClient) -> None:
    body = {"model": "echo", "input": "two words", "reasoning": {"effort": "medium"}, "stream": True}
    with client.stream("POST", "/v1/responses", json=body) as r:
        assert r.status_code == 200
        events = _events(r.read().decode())
    kinds = [e.type for e in events]
    first_text = kinds.index("response.output_text.delta")
    thoughts = [e for e in events if e.type == "response.reasoning_text.delta"]
    assert thoughts and kinds.index("response.reasoning_text.delta") < first_text
    assert "".join(e.delta for e in thoughts) == "thinking (medium) about: two words"
    assert {e.output_index for e in thoughts} == {0}
    [done] = [e for e in events if e.type == "response.reasoning_text.done"]
    assert done.text == "thinking (medium) about: two words" and done.item_id == thoughts[0].item_id
    final = events[-1].response
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].content[0].text == done.text and final.output_text == "echo: two words"
    added = [e.output_index for e in events if e.type == "response.output_item.added"]
    assert added == [0, 1]


def test_reasoning_streams_as_summary_events_when_a_summary_was_asked_for(client: TestClient) -> None:
    body = {"model": "echo", "input": "hi", "reasoning": {"effort": "low", "summary": "detailed"}, "stream": True}
    with client.stream("POST", "/v1/responses", json=body) as r:
        events = _events(r.read().decode())
    kinds = [e.type for e in events]
    assert "response.reasoning_text.delta" not in kinds
    assert kinds.index("response.reasoning_summary_part.added") < kinds.index("response.reasoning_summary_text.delta")
    text = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert text == "thinking (low) about: hi"
    [done] = [e for e in events if e.type == "response.reasoning_summary_part.done"]
    assert done.part.text == text and done.summary_index == 0
    reasoning = events[-1].response.output[0]
    assert reasoning.summary[0].text == text and reasoning.content[0].text == text


def test_the_sdk_reads_reasoning_items_plain_and_streamed(client: TestClient) -> None:
    sdk = in_process_sdk(client)
    r = sdk.responses.create(model="echo", input="hi", reasoning={"effort": "high"})
    assert r.output[0].type == "reasoning" and r.output_text == "echo: hi"
    with sdk.responses.stream(model="echo", input="hi", reasoning={"effort": "high"}) as stream:
        final = stream.get_final_response()
    assert isinstance(final.output[0], ResponseReasoningItem) and final.output_text == "echo: hi"


def test_reasoning_items_sent_back_are_accepted_and_left_out_of_the_prompt(client: TestClient) -> None:
    """An agent loop that keeps its own context (store false) sends each earlier reasoning item back."""
    first = _create(
        client, input="one", reasoning={"effort": "low"}, store=False, include=["reasoning.encrypted_content"]
    )
    items = [{"role": "user", "content": "one"}, *(i.model_dump(exclude_none=True) for i in first.output)]
    second = _create(client, input=[*items, {"role": "user", "content": "two"}], store=False)
    assert second.output_text == "echo: two"
    assert [(m.role, m.text()) for m in _sent(client).messages] == [
        ("user", "one"),
        ("assistant", "echo: one"),
        ("user", "two"),
    ]
    stored = _create(client, input="three", reasoning={"effort": "low"})
    _create(client, input="four", previous_response_id=stored.id)
    assert [m.text() for m in _sent(client).messages] == ["three", "echo: three", "four"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"reasoning": {"effort": "low", "budget": 5}}, "reasoning.budget"),
        ({"include": ["message.output_text.logprobs"]}, "include.0"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input"),
    ],
)
def test_bad_reasoning_fields_are_400_naming_them(
    client: TestClient, ledger: Callable[[], list[UsageRecord]], body: dict[str, Any], param: str
) -> None:
    r = client.post("/v1/responses", json={"model": "echo", "input": "hi", **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    assert [(row.endpoint, row.status) for row in ledger()] == [("responses", 400)]  # settled once


def _message(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/messages", json={"model": "echo", "max_tokens": 20000, "messages": USER, **body})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "effort", "shown"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "low", True),
        ({"thinking": {"type": "enabled", "budget_tokens": 10000}}, "medium", True),
        ({"thinking": {"type": "enabled", "budget_tokens": 16384}}, "high", True),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "output_config": {"effort": "max"}}, "xhigh", True),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024, "display": "omitted"}}, "low", False),
        ({"thinking": {"type": "adaptive"}}, None, True),
        ({"output_config": {"effort": "low"}}, "low", False),
        ({"output_config": {"effort": "high"}, "thinking": {"type": "disabled"}}, None, False),
    ],
)
def test_anthropic_thinking_and_effort_reach_the_model_as_a_reasoning_effort(
    client: TestClient, body: dict[str, Any], effort: str | None, shown: bool
) -> None:
    msg = _message(client, **body)
    assert (_sent(client).model_extra or {}).get("reasoning_effort") == effort
    expected = [{"type": "text", "text": "echo: hello"}]
    if shown and effort is not None:
        expected.insert(0, {"type": "thinking", "thinking": f"thinking ({effort}) about: hello", "signature": ""})
    assert msg["content"] == expected


def test_anthropic_thinking_streams_as_a_thinking_block_before_the_text(client: TestClient) -> None:
    body = {
        "model": "echo",
        "max_tokens": 5000,
        "messages": USER,
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    with client.stream("POST", "/v1/messages", json=body) as r:
        assert r.status_code == 200
        text = r.read().decode()
    events = [orjson.loads(line[6:]) for line in text.split("\n") if line.startswith("data: ")]
    starts = [(e["index"], e["content_block"]["type"]) for e in events if e["type"] == "content_block_start"]
    assert starts == [(0, "thinking"), (1, "text")]
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert "".join(d["thinking"] for d in deltas if d["type"] == "thinking_delta") == "thinking (low) about: hello"
    assert all(
        e["index"] == 0 for e in events if e["type"] == "content_block_delta" and e["delta"]["type"] == "thinking_delta"
    )
    stops = [e["index"] for e in events if e["type"] == "content_block_stop"]
    assert stops == [0, 1]


def test_a_thinking_block_sent_back_is_not_part_of_the_prompt(client: TestClient) -> None:
    first = _message(client, thinking={"type": "enabled", "budget_tokens": 1024})
    messages = [*USER, {"role": "assistant", "content": first["content"]}, {"role": "user", "content": "again"}]
    _message(client, messages=messages, thinking={"type": "enabled", "budget_tokens": 1024})
    assert [(m.role, m.text()) for m in _sent(client).messages] == [
        ("user", "hello"),
        ("assistant", "echo: hello"),
        ("user", "again"),
    ]
