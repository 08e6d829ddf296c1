"""The server `interlock serve` runs: the response head leaves with the first body bytes; the start-up heap is
frozen and the youngest GC generation collected less often."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from interlock.server import CoalescingHttpToolsProtocol

WRITES: list[bytes] = []


class _CountingTransport:
    """Records every write that reaches the real transport."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        WRITES.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _CountingProtocol(CoalescingHttpToolsProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(_CountingTransport(transport))  # type: ignore[arg-type]


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    reply = b"echo:" + body
    await send(
        {"type": "http.response.start", "status": 201, "headers": [(b"content-length", str(len(reply)).encode())]}
    )
    await send({"type": "http.response.body", "body": reply})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=free, http=_CountingProtocol, log_level="error", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    WRITES.clear()
    yield free
    server.should_exit = True
    await task


async def _exchange(port: int, raw: bytes, until: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    data = b""
    while until not in data:
        piece = await asyncio.wait_for(reader.read(65536), 5)
        assert piece, f"connection closed early after {data!r}"
        data += piece
    writer.close()
    return data


async def test_head_and_body_leave_in_one_write(port: int) -> None:
    data = await _exchange(port, b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\nhi", b"echo:hi")
    assert data.startswith(b"HTTP/1.1 201 ")
    assert len(WRITES) == 1 and WRITES[0] == data


async def test_a_stream_sends_its_head_with_the_first_event_then_each_event(port: int) -> None:
    data = await _exchange(port, b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n", b"0\r\n\r\n")
    assert b"transfer-encoding: chunked" in data and data.count(b"data: ") == 3
    assert len(WRITES) == 4  # head + first event, two more events, the end of the chunked body
    assert WRITES[0].startswith(b"HTTP/1.1 200 ") and WRITES[0].endswith(b"data: 0\n\n\r\n")


async def test_a_head_request_gets_its_head_though_no_body_follows(port: int) -> None:
    """uvicorn writes no body for HEAD: holding the head for one would leave the client waiting."""
    data = await _exchange(port, b"HEAD /x HTTP/1.1\r\nhost: t\r\n\r\n", b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 201 ") and b"content-length: 5" in data.lower()
    assert not data.endswith(b"echo:")


async def test_100_continue_is_not_held_back(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n")
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"ok")
    rest = b""
    while b"echo:ok" not in rest:
        rest += await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    assert rest.startswith(b"HTTP/1.1 201 ")


async def test_keep_alive_requests_each_get_one_write(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for body in (b"a1", b"b2"):
        writer.write(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n" + body)
        data = b""
        while b"echo:" + body not in data:
            data += await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    assert len(WRITES) == 2


_GC_SCRIPT = """
import gc, sys, uvicorn
from interlock.server import GatewayServer, tune_gc

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        if sys.argv[1] == "fail":
            await send({"type": "lifespan.startup.failed", "message": "no store"})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

class Once(GatewayServer):
    async def startup(self, sockets=None):
        await super().startup(sockets)
        print("frozen", gc.get_freeze_count() > 1000, "threshold", gc.get_threshold()[0], flush=True)
        self.should_exit = True

tune_gc()
server = Once(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", lifespan="on"))
server.run()
print("started", server.started)
"""


def _run_gc_script(lifespan: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _GC_SCRIPT, lifespan], capture_output=True, text=True, timeout=60)


def test_the_server_freezes_the_start_up_heap_once_started_and_collects_less_often() -> None:
    done = _run_gc_script("ok")
    assert done.returncode == 0, done.stderr
    assert "frozen True threshold 20000" in done.stdout and "started True" in done.stdout, done.stdout


def test_a_failed_start_up_exits_3_as_uvicorn_run_does() -> None:
    done = _run_gc_script("fail")
    assert done.returncode == 3 and "started" not in done.stdout, (done.stdout, done.stderr)
