"""`POST /v1/responses/input_tokens` (`client.responses.input_tokens.count`): a Responses prompt's tokens,
counted as the model would be sent it (instructions, a stored earlier turn, the input, the tools), with no
model called and nothing billed."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest
from starlette.testclient import TestClient

from interlock.store.records import UsageRecord
from tests.api.sdk import in_process_sdk

WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}


def test_the_sdk_counts_a_prompt_as_the_model_would_get_it(
    client: TestClient, ledger: Callable[[], list[UsageRecord]]
) -> None:
    sdk = in_process_sdk(client)
    counted = sdk.responses.input_tokens.count(model="echo", input="hello you", instructions="be brief")
    assert counted.object == "response.input_tokens" and counted.input_tokens == 4  # the fake counts words
    raw = client.post("/v1/responses/input_tokens", json={"model": "echo", "input": "hello you"})
    assert raw.headers["x-interlock-token-count-source"] == "tokenizer:echo" and raw.json()["input_tokens"] == 2
    with_tools = sdk.responses.input_tokens.count(model="echo", input="hello you", tools=[WEATHER])  # type: ignore[list-item]
    assert with_tools.input_tokens > 2
    assert ledger() == []  # nothing was billed
    first = sdk.responses.create(model="echo", input="one two three")  # "echo: one two three" comes back
    continued = sdk.responses.input_tokens.count(model="echo", input="four", previous_response_id=first.id)
    assert continued.input_tokens == 1 + 3 + 4  # the stored turn's input and output, then the new input


def test_refusals_name_what_to_fix(client: TestClient, ledger: Callable[[], list[UsageRecord]]) -> None:
    sdk = in_process_sdk(client)
    with pytest.raises(openai.NotFoundError, match="nope"):
        sdk.responses.input_tokens.count(model="nope", input="hi")
    narrow = client.post("/admin/keys", json={"name": "narrow", "models": ["echo-remote"]}).json()["key"]
    with pytest.raises(openai.PermissionDeniedError):
        in_process_sdk(client, narrow).responses.input_tokens.count(model="echo", input="hi")
    other = client.post("/admin/keys", json={"name": "other"}).json()["key"]
    stored = sdk.responses.create(model="echo", input="mine")
    with pytest.raises(openai.NotFoundError, match="previous response"):  # another key's stored response
        in_process_sdk(client, other).responses.input_tokens.count(
            model="echo", input="x", previous_response_id=stored.id
        )
    for body, param in [
        ({"model": "echo", "input": [{"type": "message", "role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "echo", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "echo", "input": "x", "surprise": 1}, "surprise"),
        ({"input": "x"}, "model"),
    ]:
        r = client.post("/v1/responses/input_tokens", json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    assert (
        client.post(
            "/v1/responses/input_tokens", content=b"[1, 2", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/v1/responses/input_tokens", json={"model": "echo", "input": "x"}, headers={"authorization": "Bearer nope"}
        ).status_code
        == 401
    )
    assert [row.endpoint for row in ledger()] == ["responses"]  # only the one response created; counts bill nothing
