"""On `/v1/messages`, whose error shape has no `code`, every error carries it in `x-interlock-error-code`."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

OK = {"model": "echo", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
PROMPT = {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}
NO_KEY = {"authorization": ""}


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "code"),
    [
        ("POST", "/v1/messages", NO_KEY, OK, 401, "missing_api_key"),
        ("POST", "/v1/messages", {"authorization": "Bearer sk-il-nope"}, OK, 401, "invalid_api_key"),
        ("POST", "/v1/messages", {"x-interlock-residency": "elsewhere"}, OK, 400, "invalid_request_error"),
        ("POST", "/v1/messages", {}, {**OK, "max_tokens": 0}, 400, "invalid_value"),
        ("POST", "/v1/messages", {}, {**OK, "model": "nope"}, 404, "model_not_found"),
        ("POST", "/v1/messages", {}, {**OK, "messages": [{"role": "user", "content": "[[fail]]"}]}, 502, None),
        (
            "POST",
            "/v1/messages",
            {},
            {**OK, "stream": True, "messages": [{"role": "user", "content": "[[fail]]"}]},
            502,
            None,
        ),
        ("GET", "/v1/messages", {}, None, 405, "method_not_allowed"),
        ("POST", "/v1/messages/nope", {}, OK, 404, "unknown_route"),
        ("POST", "/v1/messages/count_tokens", NO_KEY, OK, 401, "missing_api_key"),
        ("POST", "/v1/messages/count_tokens", {}, PROMPT, 404, "model_not_found"),
    ],
)
def test_every_error_names_its_code_in_a_header(
    client: TestClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: dict[str, Any] | None,
    status: int,
    code: str | None,
) -> None:
    r = client.request(method, path, headers=headers, json=body)
    assert r.status_code == status, r.text
    assert r.json()["type"] == "error" and r.json()["error"]["message"]  # Anthropic's shape, whatever failed
    got = r.headers.get("x-interlock-error-code")
    assert got, r.headers
    if code is not None:
        assert got == code


def test_too_large_and_rate_limited_carry_it_too(client: TestClient) -> None:
    big = {**OK, "messages": [{"role": "user", "content": "x" * 20_000_000}]}
    r = client.post("/v1/messages", json=big)
    assert r.status_code == 413 and r.headers["x-interlock-error-code"] == "request_too_large"


def test_openai_shaped_errors_keep_the_code_in_the_body(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", headers=NO_KEY, json={"model": "echo", "messages": []})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    assert "x-interlock-error-code" not in r.headers
