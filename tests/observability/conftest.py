"""An app with the fake provider and extra config, a scrape parser, and an upstream that records headers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import load_settings
from tests.conftest import ADMIN_KEY, FAKE_CONFIG

AppFactory = Callable[[str], TestClient]
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[AppFactory]:
    """Start an app on the fake config plus `extra` TOML; every app started is stopped at the end."""
    started: list[TestClient] = []

    def make(extra: str = "") -> TestClient:
        config = tmp_path / f"interlock-{len(started)}.toml"
        config.write_text(FAKE_CONFIG + "\n" + extra)
        env = {"INTERLOCK_HOME": str(tmp_path / f"home-{len(started)}"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY}
        client = TestClient(create_app(load_settings(config, env)), headers={"authorization": f"Bearer {ADMIN_KEY}"})
        client.__enter__()
        started.append(client)
        return client

    yield make
    for client in reversed(started):
        client.__exit__(None, None, None)


def scrape(client: TestClient, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics as {(sample name, labels): value}."""
    r = client.get("/metrics", headers=headers or None)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The one sample named `name` whose labels include `labels` (0 when there is none)."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else 0.0


COMPLETION = {
    "id": "chatcmpl-upstream",
    "object": "chat.completion",
    "created": 1,
    "model": "up",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


@contextmanager
def recording_upstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """An OpenAI-compatible upstream on 127.0.0.1 that answers one completion and records request headers."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            seen.append({k.lower(): v for k, v in self.headers.items()})
            body = json.dumps(COMPLETION).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
