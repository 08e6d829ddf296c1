"""POST /v1/completions in-process: the `text_completion` shape, streaming, refusals, one ledger row each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from interlock.store.records import UsageRecord


def _events(text: str) -> list[str]:
    return [line[6:] for line in text.split("\n") if line.startswith("data: ")]


def test_plain_completion_shape_and_ledger(client: TestClient, ledger: Callable[[], list[UsageRecord]]) -> None:
    r = client.post("/v1/completions", json={"model": "echo", "prompt": "say this is a test", "max_tokens": 50})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-") and body["model"] == "echo"
    assert body["choices"] == [
        {"text": "echo: say this is a test", "index": 0, "logprobs": None, "finish_reason": "stop"}
    ]
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
    rows = ledger()
    assert len(rows) == 1
    assert rows[0].endpoint == "completions" and rows[0].status == 200 and rows[0].alias == "echo"
    assert (rows[0].prompt_tokens, rows[0].completion_tokens) == (5, 6) and rows[0].cost_micros > 0


def test_prompt_as_a_list_of_one_and_the_default_max_tokens(client: TestClient) -> None:
    words = " ".join(["w"] * 30)
    r = client.post("/v1/completions", json={"model": "echo", "prompt": [words]})
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "length"  # OpenAI's default of 16 tokens applies
    assert len(choice["text"].split()) == 16


def test_streamed_completion_with_usage(client: TestClient, ledger: Callable[[], list[UsageRecord]]) -> None:
    body = {"model": "echo", "prompt": "one two three", "stream": True, "stream_options": {"include_usage": True}}
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all(c["object"] == "text_completion" and c["id"].startswith("cmpl-") for c in chunks)
    text = "".join(ch["text"] for c in chunks for ch in c["choices"])
    assert text == "echo: one two three"
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert finishes == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
    rows = ledger()
    assert len(rows) == 1 and rows[0].stream and rows[0].endpoint == "completions"


def test_streamed_completion_without_usage_sends_no_usage_chunk(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"model": "echo", "prompt": "hi", "stream": True})
    chunks = [orjson.loads(e) for e in _events(r.text)[:-1]]
    assert chunks and all(c["choices"] and "usage" not in c for c in chunks)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"suffix": "end"}, "suffix"),
        ({"logprobs": 2}, "logprobs"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"best_of": 2}, "best_of"),
        ({"echo": True}, "echo"),
        ({"n": 2}, "n"),
        ({"max_tokens": True}, "max_tokens"),
        ({"top_p": 1.5}, "top_p"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"tools": []}, "tools"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": ""}, "model"),
    ],
)
def test_refused_fields_are_400_naming_them(
    client: TestClient, ledger: Callable[[], list[UsageRecord]], extra: dict[str, Any], param: str
) -> None:
    r = client.post("/v1/completions", json={"model": "echo", "prompt": "hi", **extra})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and param in err["message"]
    assert err["param"] is not None and err["param"].startswith(param)
    rows = ledger()
    assert len(rows) == 1 and rows[0].status == 400 and rows[0].endpoint == "completions"


def test_nulls_and_defaults_are_accepted(client: TestClient) -> None:
    body = {"model": "echo", "prompt": "hi", "suffix": None, "logprobs": None, "echo": False, "n": 1, "best_of": 1}
    assert client.post("/v1/completions", json=body).status_code == 200


def test_unknown_and_embedding_models_are_404(client: TestClient) -> None:
    assert client.post("/v1/completions", json={"model": "nope", "prompt": "hi"}).status_code == 404
    assert client.post("/v1/completions", json={"model": "vectors", "prompt": "hi"}).status_code == 404


def test_a_key_without_the_model_is_403(client: TestClient) -> None:
    key = client.post("/admin/keys", json={"name": "narrow", "models": ["echo-remote"]}).json()["key"]
    r = client.post(
        "/v1/completions", json={"model": "echo", "prompt": "hi"}, headers={"authorization": f"Bearer {key}"}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
