"""The HTTP server `interlock serve` runs: uvicorn with httptools, the response head and the first body
bytes written together, and the cyclic garbage collector tuned for a long-running server.

uvicorn writes the status line and headers as soon as the app sends `http.response.start`, and the
body with the next message: two socket writes per response where one would do. On loopback every
write runs the receiver's TCP processing inside the sender's system call, so the extra write is a
measurable share of the gateway's CPU per request (bench/RESULTS.md). Here the head waits in memory
for the first body write (which the app sends right after it, without waiting on anything) and both
leave in one write. A `100 Continue` answer, the head of a HEAD request (uvicorn writes no body for one,
so there is nothing to wait for) and everything after the first body write pass straight through.
"""

from __future__ import annotations

import asyncio
import gc
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

# The cyclic GC's youngest generation is collected after this many net container allocations (Python's
# default is 700). What 16 requests in flight hold at once crossed 700 every ~9 requests, and those
# collections took about 4% of the gateway's CPU (bench/RESULTS.md, "the garbage collector"); at 20,000
# none ran in 4,000 requests. It collects cyclic garbage only: refcounting frees the rest at once.
GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Collect the youngest generation less often (`GEN0_THRESHOLD`)."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


def freeze_heap() -> None:
    """Move what start-up made (modules, settings, routes and what the services loaded as they started:
    about half a million objects) out of the collector's reach, so that a full collection scans only what
    requests made since. Freed start-up objects are still freed by refcounting; only cycles among them would
    stay (a config reload's old routes, once per reload). Local models load after start-up, unfrozen."""
    gc.collect()
    gc.freeze()


class GatewayServer(uvicorn.Server):
    """uvicorn's server, freezing the start-up heap once the app's lifespan has started every service."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:  # a start-up that failed is shutting down: nothing to keep
            freeze_heap()


class _HeadWithBody:
    """Wraps a cycle's transport: holds the response head until the first body write."""

    __slots__ = ("_cycle", "_head", "_transport", "_writes")

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._writes = 0  # response writes seen: 0 before the head, 1 holding it, 2 passing through

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold the response head; prepend it to the first body write; pass the rest through."""
        if self._writes == 0 and self._cycle.response_started:
            if self._cycle.scope["method"] == "HEAD":
                self._writes = 2
            else:
                self._head = bytes(data)
                self._writes = 1
                return
        if self._head is not None:
            data, self._head = self._head + bytes(data), None
            self._writes = 2
        self._transport.write(data)

    def close(self) -> None:
        """Send a held head (a response cut short still says what it was), then close."""
        if self._head is not None:
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing each response's head together with its first body bytes."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # uvicorn internals (pinned in requirements.lock, checked by tests/test_server.py): should a future
        # version rename them, responses still work, just with one write more.
        if hasattr(cycle, "transport") and hasattr(cycle, "response_started"):
            cycle.transport = _HeadWithBody(cycle.transport, cycle)  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)
