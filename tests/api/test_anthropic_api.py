"""/v1/messages: Anthropic's wire format on the same pipeline."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.testclient import TestClient

from interlock.store.records import UsageRecord


def test_messages_plain(client: TestClient, ledger: Callable[[], list[UsageRecord]]) -> None:
    body = {
        "model": "echo",
        "max_tokens": 50,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hello you"}],
    }
    r = client.post("/v1/messages", json=body)
    assert r.status_code == 200, r.text
    msg = r.json()
    assert msg["type"] == "message" and msg["role"] == "assistant"
    assert msg["content"] == [{"type": "text", "text": "echo: hello you"}]
    assert msg["stop_reason"] == "end_turn"
    assert msg["usage"] == {"input_tokens": 4, "output_tokens": 3}
    rows = ledger()
    assert len(rows) == 1 and rows[0].endpoint == "messages"


def test_messages_stream_event_sequence(client: TestClient) -> None:
    body = {
        "model": "echo",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "a b"}],
    }
    with client.stream("POST", "/v1/messages", json=body) as r:
        text = r.read().decode()
    names = [line[7:] for line in text.split("\n") if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert "content_block_start" in names and "content_block_stop" in names
    datas = [orjson.loads(line[6:]) for line in text.split("\n") if line.startswith("data: ")]
    deltas = "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta")
    assert deltas == "echo: a b"


def test_messages_errors_use_anthropic_shape(client: TestClient) -> None:
    r = client.post("/v1/messages", json={"model": "echo", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    r = client.post(
        "/v1/messages", json={"model": "zzz", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    )
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = client.post(
        "/v1/messages",
        json={"model": "echo", "max_tokens": 5, "messages": []},
        headers={"authorization": "", "x-api-key": "bad"},
    )
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_messages_stream_error_mid_way_is_an_error_event(client: TestClient) -> None:
    body = {
        "model": "echo",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "a b c [[fail-mid]]"}],
    }
    with client.stream("POST", "/v1/messages", json=body) as r:
        text = r.read().decode()
    names = [line[7:] for line in text.split("\n") if line.startswith("event: ")]
    assert names[-1] == "error" and "message_stop" not in names
