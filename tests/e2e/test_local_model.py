"""`interlock serve` with the default config, as `make run` starts it: the real SmolLM2 and MiniLM,
the official OpenAI SDK as the client over a real socket."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai
import pytest

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server

pytestmark = [pytest.mark.model, pytest.mark.subprocess]


@pytest.fixture
def client(serve: Callable[[str | None], Server]) -> Iterator[tuple[openai.OpenAI, Server]]:
    server = serve(None)  # no config file: the defaults `make run` serves
    with openai.OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0) as sdk:
        yield sdk, server


def test_default_models_chat_stream_tools_json_embeddings(client: tuple[openai.OpenAI, Server]) -> None:
    sdk, _ = client
    assert {m.id for m in sdk.models.list()} == {"smollm2", "minilm"}

    r = sdk.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Say hello."}], max_tokens=16, temperature=0
    )
    assert r.choices[0].message.content and r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None and r.usage.prompt_tokens > 5 and 0 < r.usage.completion_tokens <= 16

    chunks = list(
        sdk.chat.completions.create(
            model="smollm2",
            messages=[{"role": "user", "content": "Count to five."}],
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 12

    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    r = sdk.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools,
        tool_choice="required",
        max_tokens=64,
    )  # type: ignore[arg-type]
    call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert r.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"  # type: ignore[union-attr]
    assert isinstance(json.loads(call.function.arguments)["city"], str)  # type: ignore[union-attr]

    r = sdk.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Describe a cat as JSON."}],
        response_format={"type": "json_object"},
        max_tokens=256,
    )
    # A JSON answer cut by max_tokens is incomplete (as with OpenAI); a finished one must parse.
    assert r.choices[0].finish_reason in ("stop", "length")
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content or ""), dict)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "legs": {"type": "integer"}},
        "required": ["name", "legs"],
        "additionalProperties": False,
    }
    r = sdk.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Give a cat's name and its number of legs."}],
        response_format={"type": "json_schema", "json_schema": {"name": "cat", "schema": schema}},
        max_tokens=64,
    )
    answer = json.loads(r.choices[0].message.content or "")
    assert r.choices[0].finish_reason == "stop" and set(answer) == {"name", "legs"} and isinstance(answer["legs"], int)

    e = sdk.embeddings.create(model="minilm", input=["A man is eating food.", "A man eats bread.", "A horse runs."])
    v = np.array([d.embedding for d in e.data])
    assert v.shape == (3, 384) and float(v[0] @ v[1]) > float(v[0] @ v[2])

    with pytest.raises(openai.BadRequestError, match="context"):
        sdk.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": "word " * 5000}], max_tokens=8
        )


def test_eight_clients_are_batched(client: tuple[openai.OpenAI, Server]) -> None:
    sdk, server = client

    def ask(i: int) -> int:
        r = sdk.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": f"Tell me fact {i}."}], max_tokens=24
        )
        assert r.usage is not None
        return r.usage.completion_tokens

    with ThreadPoolExecutor(8) as pool:
        assert all(n > 0 for n in pool.map(ask, range(8)))
    stats = httpx.get(server.url + "/readyz").json()["models"]["smollm2"]["engine"]
    assert stats["max_batch_seqs"] > 1 and stats["requests_done"] >= 8 and stats["slots_busy"] == 0
