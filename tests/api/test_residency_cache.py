"""Data residency (header and key policy) and the exact-match response cache."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import load_settings
from interlock.store.records import UsageRecord
from tests.conftest import ADMIN_KEY

CONFIG = """
[plugins]
modules = ["interlock.testing.fake"]  # the fake provider is not a production entry point

[store]
flush_interval_ms = 5
{cache}

[models.local-echo]
provider = "fake"
tags = ["local"]
price_input_per_mtok = 1
price_output_per_mtok = 1

[models.remote-echo]
provider = "fake"
price_input_per_mtok = 5
price_output_per_mtok = 5
cache_ttl_s = 60

[models.mixed]
price_input_per_mtok = 1
price_output_per_mtok = 1
[[models.mixed.deployments]]
provider = "fake"
model = "remote"
priority = 0
[[models.mixed.deployments]]
provider = "fake"
model = "on-prem"
tags = ["sovereign"]
priority = 1
"""
MSG = [{"role": "user", "content": "hi"}]


def _client(tmp_path: Path, cache: str = "") -> TestClient:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(cache=cache))
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    return TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"})


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path) as c:
        yield c


def _chat(c: TestClient, model: str, headers: dict[str, str] | None = None, content: str = "hi") -> object:
    return c.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}]},
        headers=headers,
    )


def test_restricted_header_keeps_requests_on_resident_deployments(app: TestClient) -> None:
    restricted = {"x-interlock-residency": "restricted"}
    r = _chat(app, "remote-echo", restricted)
    assert r.status_code == 403  # type: ignore[attr-defined]
    err = r.json()["error"]  # type: ignore[attr-defined]
    assert err["code"] == "residency_restricted" and "local" in err["message"] and "sovereign" in err["message"]
    assert _chat(app, "local-echo", restricted).status_code == 200  # type: ignore[attr-defined]
    # The router would prefer the remote deployment (priority 0); residency overrides it.
    free = _chat(app, "mixed")
    assert free.headers["x-interlock-deployment"] == "mixed#0"  # type: ignore[attr-defined]
    kept = _chat(app, "mixed", restricted)
    assert kept.headers["x-interlock-deployment"] == "mixed#1"  # type: ignore[attr-defined]
    assert _chat(app, "local-echo", {"x-interlock-residency": "maybe"}).status_code == 400  # type: ignore[attr-defined]


def test_restricted_key_cannot_lift_its_restriction(app: TestClient) -> None:
    token = app.post("/admin/keys", json={"name": "eu-app", "restricted": True}).json()["key"]
    auth = {"authorization": f"Bearer {token}"}
    assert _chat(app, "remote-echo", auth).status_code == 403  # type: ignore[attr-defined]
    assert _chat(app, "remote-echo", {**auth, "x-interlock-residency": "unrestricted"}).status_code == 403  # type: ignore[attr-defined]
    assert _chat(app, "local-echo", auth).status_code == 200  # type: ignore[attr-defined]


def _ledger(c: TestClient) -> list[UsageRecord]:
    store = c.app.state.interlock.store  # type: ignore[attr-defined]
    c.portal.call(store.flush)  # type: ignore[union-attr]
    return c.portal.call(store.usage_rows)  # type: ignore[union-attr,no-any-return]


def test_cache_hit_is_marked_and_free(app: TestClient) -> None:
    first = _chat(app, "remote-echo")
    second = _chat(app, "remote-echo")
    assert first.headers["x-interlock-cache"] == "miss" and second.headers["x-interlock-cache"] == "hit"  # type: ignore[attr-defined]
    assert first.json()["choices"] == second.json()["choices"]  # type: ignore[attr-defined]
    assert _chat(app, "remote-echo", content="other").headers["x-interlock-cache"] == "miss"  # type: ignore[attr-defined]
    assert "x-interlock-cache" not in _chat(app, "local-echo").headers  # type: ignore[attr-defined]
    rows = sorted(_ledger(app), key=lambda r: r.ts)
    assert [r.provider for r in rows[:2]] == ["fake", "cache"]
    assert rows[0].cost_micros > 0 and rows[1].cost_micros == 0 and rows[1].prompt_tokens == rows[0].prompt_tokens


def test_cache_is_per_key(app: TestClient) -> None:
    a = app.post("/admin/keys", json={"name": "a"}).json()["key"]
    b = app.post("/admin/keys", json={"name": "b"}).json()["key"]
    assert _chat(app, "remote-echo", {"authorization": f"Bearer {a}"}).headers["x-interlock-cache"] == "miss"  # type: ignore[attr-defined]
    assert _chat(app, "remote-echo", {"authorization": f"Bearer {b}"}).headers["x-interlock-cache"] == "miss"  # type: ignore[attr-defined]
    assert _chat(app, "remote-echo", {"authorization": f"Bearer {a}"}).headers["x-interlock-cache"] == "hit"  # type: ignore[attr-defined]


def test_key_opt_in_and_streamed_hit(app: TestClient) -> None:
    token = app.post("/admin/keys", json={"name": "c", "cache_ttl_s": 30}).json()["key"]
    auth = {"authorization": f"Bearer {token}"}
    body = {"model": "local-echo", "stream": True, "messages": MSG}
    texts = []
    for expected in ("miss", "hit"):
        with app.stream("POST", "/v1/chat/completions", json=body, headers=auth) as r:
            assert r.headers["x-interlock-cache"] == expected
            events = [line[6:] for line in r.read().decode().split("\n") if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [orjson.loads(e) for e in events[:-1]]
        texts.append("".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]))
    assert texts[0] == texts[1] == "echo: hi"


def test_redis_backend_is_shared(tmp_path: Path) -> None:
    url = os.environ.get("INTERLOCK_TEST_REDIS", "redis://127.0.0.1:6379/15")
    redis.Redis.from_url(url).ping()  # a missing Redis fails this test; it is never skipped
    content = "shared " + uuid.uuid4().hex
    with _client(tmp_path / "a", f'[cache]\nurl = "{url}"') as one:
        assert _chat(one, "remote-echo", content=content).headers["x-interlock-cache"] == "miss"  # type: ignore[attr-defined]
    with _client(tmp_path / "b", f'[cache]\nurl = "{url}"') as two:  # another replica, same admin principal
        assert _chat(two, "remote-echo", content=content).headers["x-interlock-cache"] == "hit"  # type: ignore[attr-defined]
