"""The flywheel's fixtures: an app that captures the `echo` model's traffic, with two declared metrics and a
guardrail policy that redacts phone numbers and pseudonymises e-mail addresses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.flywheel.capture import CaptureWriter
from interlock.settings import load_settings
from interlock.store.flywheel_queries import CaptureRecord
from tests.conftest import ADMIN_KEY, FAKE_CONFIG

FLYWHEEL = """
[flywheel.capture]
enabled = true
models = ["echo"]

[[flywheel.metrics]]
name = "correct"
type = "boolean"

[[flywheel.metrics]]
name = "quality"
type = "float"
min = 0
max = 1

[guardrails.policy.input]
EMAIL_ADDRESS = "pseudonymise"
PHONE_NUMBER = "redact"
"*" = "log"
"""


def app_client(tmp_path: Path, extra: str = FLYWHEEL, store_url: str = "") -> TestClient:
    """The app with `extra` config (and a store URL), authenticated as admin by default (not started)."""
    config = tmp_path / "interlock.toml"
    config.write_text(FAKE_CONFIG + extra)
    env = {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY}
    if store_url:
        env["INTERLOCK_STORE__URL"] = store_url
    settings = load_settings(config, env)
    return TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"})


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The capturing app, started."""
    with app_client(tmp_path) as c:
        yield c


Captures = Callable[[], list[CaptureRecord]]


@pytest.fixture
def captures(client: TestClient) -> Captures:
    """Flushes the ledger and the capture writer; returns the captures, newest first."""

    def rows() -> list[CaptureRecord]:
        store = client.app.state.interlock.store  # type: ignore[attr-defined]
        writer: CaptureWriter = client.app.state.capture  # type: ignore[attr-defined]
        client.portal.call(store.flush)  # type: ignore[union-attr]
        client.portal.call(writer.flush)  # type: ignore[union-attr]
        return client.portal.call(lambda: store.list_captures(limit=1000))  # type: ignore[union-attr,no-any-return]

    return rows


def new_key(client: TestClient, name: str = "app", **body: object) -> tuple[str, str]:
    """(key id, token) of a new key."""
    r = client.post("/admin/keys", json={"name": name, **body})
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), str(r.json()["key"])


def chat(client: TestClient, text: str, *, token: str | None = None, model: str = "echo", **extra: object) -> str:
    """One chat request; its request id."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    r = client.post("/v1/chat/completions", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"]
