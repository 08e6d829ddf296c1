"""Real socket: a client that gives up on a non-streamed request cancels it; the ledger records 499.

The upstream (`stub-hang`) never answers and the gateway's own timeouts are a minute away, so a 499
row (not a 504) can only come from the client going away, and the upstream connection must be
closed then, not when the upstream would have finished. The stub runs alone here so that its TCP
connections, read from /proc/net/tcp, are this test's only.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, free_port
from tests.e2e.conftest import Server

pytestmark = pytest.mark.subprocess


@pytest.fixture
def stub_port() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlock.testing.stub_upstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()  # uvicorn waits for the hanging request's task on a graceful stop, so kill after a while
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _config(port: int) -> str:
    return f"""
[server]
first_token_timeout = 60.0
total_timeout = 120.0

[store]
flush_interval_ms = 5

[models.hang]
provider = "openai_compatible"
base_url = "http://127.0.0.1:{port}/v1"
model = "stub-hang"
price_input_per_mtok = 1
price_output_per_mtok = 1
"""


def _established(port: int) -> int:
    """TCP connections to or from `port` that are open (state 01 in /proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if state == "01" and port in (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)):
            count += 1
    return count


def _wait_for(check: Callable[[], object], seconds: float) -> object:
    """The first truthy value of `check()`, or its last value after `seconds`."""
    deadline = time.monotonic() + seconds
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(0.05)
        value = check()
    return value


def _rows(server: Server) -> list[tuple[object, ...]]:
    db = sqlite3.connect(server.home / "interlock.db")
    try:
        return db.execute("SELECT status, stream, error FROM usage").fetchall()
    except sqlite3.OperationalError:  # the table is created on the first flush
        return []
    finally:
        db.close()


def test_an_abandoned_request_is_cancelled_and_recorded_as_499(
    serve: Callable[[str | None], Server], stub_port: int
) -> None:
    server = serve(_config(stub_port))
    body = {"model": "hang", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=server.url, headers=headers) as client, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.post, "/v1/chat/completions", json=body, timeout=httpx.Timeout(30, read=3.0))
        # Both ends of the gateway's call to the stub are open while the client waits.
        assert _wait_for(lambda: _established(stub_port) >= 2, 30), _established(stub_port)
        with pytest.raises(httpx.ReadTimeout):
            pending.result()
        # httpx closes a connection whose read timed out: the gateway sees the client go away.
    rows = _wait_for(lambda: _rows(server), 30)
    assert rows and [r[:2] for r in rows] == [(499, 0)], rows  # type: ignore[union-attr]
    # The upstream call was given up with the client: no connection to the stub is left open.
    assert _wait_for(lambda: _established(stub_port) == 0, 30), _established(stub_port)
    assert server.proc.poll() is None
