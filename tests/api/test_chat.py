"""/v1/chat/completions in-process, with the fake provider."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.testclient import TestClient

from interlock.store.records import UsageRecord


def test_plain_chat_answers_and_records_one_ledger_row(
    client: TestClient, ledger: Callable[[], list[UsageRecord]]
) -> None:
    r = client.post(
        "/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "hi there"}]}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "echo"
    assert body["choices"][0]["message"]["content"] == "echo: hi there"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert r.headers["x-interlock-model"] == "echo"
    rows = ledger()
    assert len(rows) == 1
    row = rows[0]
    assert row.request_id == r.headers["x-request-id"]
    assert (row.alias, row.provider, row.status, row.stream) == ("echo", "fake", 200, False)
    assert (row.prompt_tokens, row.completion_tokens, row.usage_source) == (2, 3, "provider")
    # 2 tokens at $1.5/M + 3 at $6/M = 3 + 18 micro-dollars
    assert row.cost_micros == 21
    assert row.price_version.startswith("config:")


def _events(text: str) -> list[bytes]:
    return [line[6:].encode() for line in text.split("\n") if line.startswith("data: ")]


def test_stream_sends_chunks_usage_and_done(client: TestClient, ledger: Callable[[], list[UsageRecord]]) -> None:
    body = {"model": "echo", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "one two three"}]}  # fmt: skip
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    events = _events(text)
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == "echo: one two three"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
    assert any(c["choices"] and c["choices"][0]["finish_reason"] == "stop" for c in chunks)
    rows = ledger()
    assert len(rows) == 1 and rows[0].stream and rows[0].status == 200 and rows[0].ttft_ms is not None


def test_stream_without_include_usage_has_no_usage_chunk(client: TestClient) -> None:
    body = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        chunks = [orjson.loads(e) for e in _events(r.read().decode())[:-1]]
    assert all(c["choices"] for c in chunks)


def test_failure_after_first_byte_ends_with_error_event_not_done(
    client: TestClient, ledger: Callable[[], list[UsageRecord]]
) -> None:
    body = {
        "model": "echo",
        "stream": True,
        "messages": [{"role": "user", "content": "a b c d [[fail-mid]]"}],
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        events = _events(r.read().decode())
    assert b"[DONE]" not in events
    last = orjson.loads(events[-1])
    assert last["error"]["type"] == "upstream_error"
    rows = ledger()
    assert len(rows) == 1 and rows[0].status == 502 and rows[0].completion_tokens > 0


def test_failure_before_first_byte_is_a_real_502(client: TestClient, ledger: Callable[[], list[UsageRecord]]) -> None:
    body = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "[[fail]]"}]}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 502
    assert r.json()["error"]["type"] == "upstream_error"
    rows = ledger()
    assert len(rows) == 1 and rows[0].status == 502


def test_tools_and_params_reach_the_provider(client: TestClient) -> None:
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "seed": 1,
        "stop": ["\n"],
        "user": "u1",
        "metadata": {"team": "a"},
        "n": 1,
    }  # fmt: skip
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_models_lists_aliases(client: TestClient) -> None:
    r = client.get("/v1/models")
    assert r.status_code == 200
    ids = {m["id"] for m in r.json()["data"]}
    assert ids == {"echo", "echo-remote", "vectors"}
    assert client.get("/v1/models/echo").json()["id"] == "echo"
    assert client.get("/v1/models/nope").json()["error"]["type"] == "invalid_request_error"
    anthropic_shape = client.get("/v1/models/nope", headers={"anthropic-version": "2023-06-01"})
    assert anthropic_shape.status_code == 404 and anthropic_shape.json()["error"]["type"] == "not_found_error"


def test_embeddings(client: TestClient, ledger: Callable[[], list[UsageRecord]]) -> None:
    r = client.post("/v1/embeddings", json={"model": "vectors", "input": ["a b", "c"]})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["index"] for d in data] == [0, 1] and len(data[0]["embedding"]) == 8
    rows = ledger()
    assert rows[0].endpoint == "embeddings" and rows[0].prompt_tokens == 3


def test_health_ready_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["store"] == "open"
    spec = client.get("/openapi.json").json()
    assert "/v1/chat/completions" in spec["paths"] and "ChatRequest" in spec["components"]["schemas"]
