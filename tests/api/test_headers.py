"""`/v1/messages` answers with the same headers as `/v1/chat/completions`, plain and streamed."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hello there"}]}
MESSAGES = {"model": "echo", "max_tokens": 20, "messages": [{"role": "user", "content": "hello there"}]}
ROUTED = ("x-interlock-model", "x-interlock-deployment", "x-interlock-provider", "x-interlock-attempts")
LIMITS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")


@pytest.fixture
def limited(client: TestClient) -> dict[str, str]:
    """A key with a request-rate limit, so that the answers carry `x-ratelimit-*`."""
    created = client.post("/admin/keys", json={"name": "limited"}).json()
    r = client.put("/admin/rate-limits", json={"scope": "key", "scope_id": created["id"], "rpm": 100})
    assert r.status_code == 200, r.text
    return {"authorization": f"Bearer {created['key']}"}


@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", CHAT), ("/v1/messages", MESSAGES)])
@pytest.mark.parametrize("stream", [False, True])
def test_every_answer_has_the_request_id_routing_and_rate_limit_headers(
    client: TestClient, limited: dict[str, str], path: str, body: dict[str, object], stream: bool
) -> None:
    with client.stream("POST", path, json={**body, "stream": stream}, headers=limited) as r:
        r.read()
    assert r.status_code == 200
    assert r.headers["x-request-id"].startswith("req_")
    assert [r.headers.get(h) for h in ROUTED] == ["echo", "echo", "fake", "1"]
    assert r.headers["x-ratelimit-limit-requests"] == "100"
    assert all(h in r.headers for h in LIMITS)


@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", CHAT), ("/v1/messages", MESSAGES)])
def test_errors_carry_the_request_id_too(client: TestClient, path: str, body: dict[str, object]) -> None:
    r = client.post(path, json={**body, "model": "nope"})
    assert r.status_code == 404 and r.headers["x-request-id"].startswith("req_")
