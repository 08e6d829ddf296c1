"""Shared fixtures: settings in a temp home, an in-process app with the fake provider, a stub upstream."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import Settings, load_settings
from interlock.store.records import UsageRecord

ADMIN_KEY = "sk-il-admin-test-key"
REDIS = os.environ.get("INTERLOCK_TEST_REDIS", "redis://127.0.0.1:6379/15")  # the tests' own Redis database


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> None:
    """Wait until `url` answers 200, or fail (with the process output if it died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = log.read_text(errors="replace") if log else ""
            raise AssertionError(f"process exited with {proc.returncode} before {url} was up:\n{out[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not become ready in {timeout} s")


FAKE_CONFIG = """
[plugins]
modules = ["interlock.testing.fake"]  # the fake provider is not a production entry point

[store]
flush_interval_ms = 5

[models.echo]
provider = "fake"
price_input_per_mtok = 1.5
price_output_per_mtok = 6
tags = ["local"]

[models.echo-remote]
provider = "fake"
price_input_per_mtok = 10
price_output_per_mtok = 30

[models.vectors]
provider = "fake"
mode = "embedding"
price_input_per_mtok = 0.02
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty INTERLOCK_HOME."""
    return tmp_path / "home"


@pytest.fixture
def settings(tmp_path: Path, home: Path) -> Settings:
    """Settings with fake models only."""
    config = tmp_path / "interlock.toml"
    config.write_text(FAKE_CONFIG)
    return load_settings(config, {"INTERLOCK_HOME": str(home), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})


@pytest.fixture
def client(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app in-process, lifespan started, authenticated as admin by default."""
    monkeypatch.setenv("INTERLOCK_ADMIN_KEY", ADMIN_KEY)
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


@pytest.fixture
def ledger(client: TestClient) -> Callable[[], list[UsageRecord]]:
    """Flushes the ledger and returns its rows, newest first."""

    def rows() -> list[UsageRecord]:
        store = client.app.state.interlock.store  # type: ignore[attr-defined]
        client.portal.call(store.flush)  # type: ignore[union-attr]
        return client.portal.call(store.usage_rows)  # type: ignore[union-attr,no-any-return]

    return rows


@pytest.fixture(scope="session")
def stub_upstream() -> Iterator[str]:
    """The stub upstream in a subprocess; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlock.testing.stub_upstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own (in `REDIS`); its keys are deleted after it."""
    name = f"interlock-test-{uuid.uuid4().hex[:8]}:"
    yield name
    r = redis.Redis.from_url(REDIS)
    for key in r.scan_iter(f"{name}*"):
        r.delete(key)
    r.close()
