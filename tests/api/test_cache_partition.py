"""The gateway tells providers whose request they serve: the partition prompt caches are kept apart by."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import load_settings
from interlock.testing.fake import FakeProvider
from interlock.types import ChatRequest, ChatResponse
from interlock.types.tenancy import CACHE_PARTITION, cache_salt_of, partition_of
from tests.conftest import ADMIN_KEY


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


SALTED = """
[models.salted]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub"
cache_salt = true

[models.salted-native]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub"
cache_salt = true
responses_api = "native"

[models.plain]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub"
"""


def test_an_upstream_with_cache_salt_gets_one_salt_per_key_and_never_the_clients(
    tmp_path: Path, stub_upstream: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(SALTED.format(stub=stub_upstream))
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    marker = f"m-{uuid.uuid4().hex[:12]}"
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as app:
        keys = [app.post("/admin/keys", json={"name": n}).json() for n in ("a", "b")]
        for model, made, stream in [("salted", keys[0], False), ("salted", keys[0], True), ("salted", keys[1], False),
                                    ("plain", keys[0], False)]:  # fmt: skip
            body = {"model": model, "stream": stream, "cache_salt": "someone-elses",
                    "messages": [{"role": "user", "content": marker}]}  # fmt: skip
            r = app.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {made['key']}"})
            assert r.status_code == 200
        for stream in (False, True):  # a Responses request sent to the upstream's own /v1/responses is salted too
            body = {"model": "salted-native", "stream": stream, "input": marker}
            r = app.post("/v1/responses", json=body, headers={"authorization": f"Bearer {keys[1]['key']}"})
            assert r.status_code == 200, r.text
    data = httpx.get(f"{stub_upstream}/stub/received", timeout=5).json()["data"]
    salts = [r["body"].get("cache_salt") for r in data if marker in orjson.dumps(r["body"]).decode()]
    a, b = (cache_salt_of(f"key:{k['id']}") for k in keys)
    assert salts == [a, a, b, "someone-elses", b, b]  # a deployment without the option passes it on as sent
    assert a and b and a != b and keys[0]["id"] not in str(a)
