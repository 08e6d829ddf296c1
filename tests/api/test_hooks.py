"""A hook added through the public API runs on every model endpoint, can rewrite, deny and observe."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.plugins import Denied, Hook, HookContext, ModelRequest, ModelResponse, Outcome
from interlock.settings import Settings
from interlock.types import ChatChunk, ChatRequest
from tests.conftest import ADMIN_KEY


class Recorder(Hook[HookContext]):
    """Records every call; rewrites `secret` to `[masked]` on input; refuses the word `forbidden`."""

    name: ClassVar[str] = "recorder"
    phase = "input"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.outcomes: list[Outcome] = []
        self.seen_prompts: list[str] = []

    async def before(self, ctx: HookContext, request: ModelRequest) -> ModelRequest:
        self.calls.append(("before", ctx.endpoint))
        if isinstance(request, ChatRequest):
            text = " ".join(m.text() for m in request.messages)
            if "forbidden" in text:
                raise Denied("this request mentions something forbidden", code="content_policy")
            if "secret" in text:
                messages = [
                    m.model_copy(update={"content": m.text().replace("secret", "[masked]")}) for m in request.messages
                ]
                request = request.model_copy(update={"messages": messages})
        return request

    async def on_batch(self, ctx: HookContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        self.calls.append(("on_batch", ctx.endpoint))
        for chunk in batch:
            for choice in chunk.choices:
                self.seen_prompts.append(choice.delta.content or "")
        return batch

    async def after(self, ctx: HookContext, response: ModelResponse) -> ModelResponse:
        self.calls.append(("after", ctx.endpoint))
        return response

    def finish(self, ctx: HookContext, outcome: Outcome) -> None:
        self.calls.append(("finish", ctx.endpoint))
        self.outcomes.append(outcome)


@pytest.fixture
def hooked(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Recorder]]:
    monkeypatch.setenv("INTERLOCK_ADMIN_KEY", ADMIN_KEY)
    hook = Recorder()
    with TestClient(create_app(settings, hooks=[hook]), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c, hook


CHAT = {"model": "echo", "messages": [{"role": "user", "content": "say my secret"}]}


def test_the_hook_runs_on_every_model_endpoint(hooked: tuple[TestClient, Recorder]) -> None:
    client, hook = hooked
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
        assert r.status_code == 200 and "[DONE]" in r.read().decode()
    anthropic = {"model": "echo", "max_tokens": 20, "messages": [{"role": "user", "content": "say my secret"}]}
    assert client.post("/v1/messages", json=anthropic).status_code == 200
    with client.stream("POST", "/v1/messages", json={**anthropic, "stream": True}) as r:
        assert r.status_code == 200 and "message_stop" in r.read().decode()
    assert client.post("/v1/embeddings", json={"model": "vectors", "input": "hello"}).status_code == 200
    assert client.post("/v1/responses", json={"model": "echo", "input": "say my secret"}).status_code == 200
    assert client.post("/v1/completions", json={"model": "echo", "prompt": "say my secret"}).status_code == 200

    by_endpoint: dict[str, list[str]] = {}
    for method, endpoint in hook.calls:
        by_endpoint.setdefault(endpoint, []).append(method)
    assert by_endpoint["chat"].count("before") == 2 and by_endpoint["chat"].count("finish") == 2
    assert "after" in by_endpoint["chat"] and "on_batch" in by_endpoint["chat"]
    assert by_endpoint["messages"].count("before") == 2 and "on_batch" in by_endpoint["messages"]
    assert by_endpoint["embeddings"] == ["before", "after", "finish"]
    assert by_endpoint["responses"] == ["before", "after", "finish"]
    assert by_endpoint["completions"] == ["before", "after", "finish"]
    assert [o.status for o in hook.outcomes] == [200] * 7


def test_a_rewrite_reaches_the_model_and_the_original_does_not(hooked: tuple[TestClient, Recorder]) -> None:
    client, _ = hooked
    answer = client.post("/v1/chat/completions", json=CHAT).json()["choices"][0]["message"]["content"]
    assert "[masked]" in answer and "secret" not in answer  # the fake model echoes its prompt


def test_a_denial_is_the_error_json_a_ledger_row_and_an_audit_entry(
    hooked: tuple[TestClient, Recorder],
) -> None:
    client, hook = hooked
    body = {"model": "echo", "messages": [{"role": "user", "content": "something forbidden"}]}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 403
    assert r.json()["error"] == {
        "message": "this request mentions something forbidden",
        "type": "permission_error",
        "param": None,
        "code": "content_policy",
    }
    assert r.headers["x-request-id"].startswith("req_")
    assert hook.outcomes[-1].status == 403 and not hook.outcomes[-1].attempted
    state = client.app.state.interlock  # type: ignore[attr-defined]
    client.portal.call(state.store.flush)  # type: ignore[union-attr]
    rows = client.portal.call(state.store.usage_rows)  # type: ignore[union-attr]
    assert [(row.request_id, row.status) for row in rows] == [(r.headers["x-request-id"], 403)]
    client.portal.call(state.audit.checkpoint)  # type: ignore[union-attr]
    entries = client.portal.call(state.audit.recent, 10)  # type: ignore[union-attr]
    assert any(e.decision == "deny" and "content_policy" in e.metadata for e in entries)
