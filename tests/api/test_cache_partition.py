"""The gateway tells providers whose request they serve: the partition prompt caches are kept apart by."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from interlock.testing.fake import FakeProvider
from interlock.types import ChatRequest, ChatResponse
from interlock.types.tenancy import CACHE_PARTITION, partition_of


def test_partition_of_each_scope_falls_back_to_what_the_caller_has() -> None:
    assert partition_of("key", "k1", "t1", "o1", "svc") == "key:k1"
    assert partition_of("team", "k1", "t1", "o1", "svc") == "team:t1"
    assert partition_of("team", "k1", None, None, "svc") == "key:k1"
    assert partition_of("org", "k1", "t1", "o1", "svc") == "org:o1"
    assert partition_of("org", "k1", "t1", None, "svc") == "team:t1"
    assert partition_of("key", None, None, None, "admin") == "key:admin"
    assert partition_of("shared", "k1", "t1", "o1", "svc") == ""


def test_each_key_is_its_own_partition_and_the_variable_does_not_leak(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    chat = FakeProvider.chat

    async def recording(self: FakeProvider, request: ChatRequest) -> ChatResponse:
        seen.append(CACHE_PARTITION.get())
        return await chat(self, request)

    monkeypatch.setattr(FakeProvider, "chat", recording)
    keys = [client.post("/admin/keys", json={"name": n}).json() for n in ("a", "b")]
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    for made in [*keys, keys[0]]:
        r = client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {made['key']}"})
        assert r.status_code == 200
    assert client.post("/v1/chat/completions", json=body).status_code == 200  # the admin key
    assert seen == [f"key:{keys[0]['id']}", f"key:{keys[1]['id']}", f"key:{keys[0]['id']}", "key:admin"]
    assert CACHE_PARTITION.get() == ""
