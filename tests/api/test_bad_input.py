"""Bad input gets OpenAI's error JSON with the right status and a message saying what to fix."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from interlock.store.records import UsageRecord

MSG = [{"role": "user", "content": "hi"}]


def _error(r: object, status: int) -> dict:  # type: ignore[type-arg]
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    err = r.json()["error"]  # type: ignore[attr-defined]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    return err  # type: ignore[no-any-return]


def test_malformed_json(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions",
        content=b'{"model": "echo", "messages": [',
        headers={"content-type": "application/json"},
    )
    err = _error(r, 400)
    assert "not valid JSON" in err["message"] and err["code"] == "invalid_json"


def test_json_that_is_not_an_object(client: TestClient) -> None:
    assert "JSON object" in _error(client.post("/v1/chat/completions", json=[1, 2]), 400)["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": MSG}, "'model' is required"),
        ({"model": "echo"}, "'messages' is required"),
        ({"model": "echo", "messages": []}, "messages"),
        ({"model": "echo", "messages": "hi"}, "messages"),
        ({"model": "echo", "messages": MSG, "temperature": "hot"}, "temperature"),
        ({"model": "echo", "messages": MSG, "temperature": 3}, "temperature"),
        ({"model": "echo", "messages": MSG, "max_tokens": -5}, "max_tokens"),
        ({"model": "echo", "messages": MSG, "n": 2}, "'n'"),
        ({"model": "echo", "messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"model": "echo", "messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"model": "echo", "messages": MSG, "response_format": {"type": "xml"}}, "response_format"),
        ({"model": "echo", "messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        (
            {
                "model": "echo",
                "messages": MSG,
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            "nope",
        ),
    ],
)
def test_wrong_types_and_values(client: TestClient, body: dict, fragment: str) -> None:  # type: ignore[type-arg]
    err = _error(client.post("/v1/chat/completions", json=body), 400)
    assert fragment in err["message"]
    assert err["type"] == "invalid_request_error"


def test_huge_body_is_413_without_reading_it(client: TestClient) -> None:
    big = "x" * (5 * 1024 * 1024)
    err = _error(
        client.post("/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": big}]}),
        413,
    )
    assert "limit" in err["message"]


def test_unknown_model_is_404_and_lists_models(client: TestClient) -> None:
    err = _error(client.post("/v1/chat/completions", json={"model": "gpt-9", "messages": MSG}), 404)
    assert "gpt-9" in err["message"] and "echo" in err["message"] and err["code"] == "model_not_found"


def test_embedding_model_on_chat_endpoint_is_404(client: TestClient) -> None:
    assert (
        "embedding"
        in _error(client.post("/v1/chat/completions", json={"model": "vectors", "messages": MSG}), 404)["message"]
    )


def test_odd_unicode_round_trips(client: TestClient) -> None:
    text = "zero\u200bwidth, emoji 👩🏽‍💻, RTL \u202eevil, null \x00 byte, astral \U0001d518\U0001d52b\U0001d526"
    r = client.post("/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "echo: " + text


def test_invalid_utf8_is_400(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions",
        content=b'{"model": "echo", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
    )
    _error(r, 400)


def test_unknown_route_and_wrong_method(client: TestClient) -> None:
    assert _error(client.get("/v1/nothing"), 404)["code"] == "unknown_route"
    assert _error(client.get("/v1/chat/completions"), 405)["code"] == "method_not_allowed"


def test_every_bad_request_with_a_key_is_in_the_ledger_once(
    client: TestClient, ledger: Callable[[], list[UsageRecord]]
) -> None:
    client.post("/v1/chat/completions", content=b"{", headers={"content-type": "application/json"})
    client.post("/v1/chat/completions", json={"model": "echo", "messages": MSG, "n": 3})
    client.post("/v1/chat/completions", json={"model": "gpt-9", "messages": MSG})
    client.post("/v1/chat/completions", json={"model": "echo", "messages": MSG})
    rows = ledger()
    assert sorted(r.status for r in rows) == [200, 400, 400, 404]
    assert len({r.request_id for r in rows}) == 4
    assert all(r.cost_micros == 0 for r in rows if r.status != 200)
