"""One model request over HTTP: the ASGI response that runs `Gateway.handle` and writes what it sends.

Every model endpoint is the same exchange with its own wire format (`Wire`): parse the body into a
typed request, render a complete answer, frame a streamed one, and say how an error looks. The
exchange is the gateway's `Sink`. It reads the body, then watches for the client going away: a
disconnect cancels the request (the gateway records it as 499 and closes the upstream call). A
stream is watched from the start; a complete answer from `WATCH_AFTER_S` on, so that the many
answers that take less cost no watcher task. Once
the last byte of the answer is sent it stops watching, so a client that leaves after its answer did
not cut it short.

A stream's frames of one batch (the chunks one upstream read brought) go out in one write, and a
batch marked `last` (see `types.Batch`) carries the closing frames with it. A failure after the
first byte ends the stream with an error event, never cleanly: a clean end looks like a complete
answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Protocol, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from interlock.api.http import error_headers, parse_json, read_body
from interlock.errors import GatewayError
from interlock.gateway.context import RequestContext
from interlock.gateway.gateway import Gateway
from interlock.gateway.streams import RelayStream, Stream
from interlock.plugins.hooks import ModelRequest, ModelResponse
from interlock.translate.openai_relay import RelayChunk
from interlock.types import ChatChunk

log = logging.getLogger(__name__)
K = TypeVar("K", ChatChunk, RelayChunk)

WATCH_AFTER_S = 0.2  # a complete answer not done by then starts watching for the client going away
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


class Wire(Protocol):
    """An endpoint's wire format, one instance per request (a stream writer may keep state)."""

    flavor: ClassVar[str]  # "openai" or "anthropic": the error JSON's shape

    def __init__(self, ctx: RequestContext) -> None: ...

    def parse(self, data: dict[str, Any]) -> ModelRequest:
        """The typed request, or a 400 naming the bad field."""
        ...

    def render(self, response: ModelResponse) -> bytes:
        """A complete answer's body."""
        ...

    def frames(self, chunk: ChatChunk) -> list[bytes]:
        """The server-sent events for one chunk."""
        ...

    def closing(self) -> list[bytes]:
        """The events that end a complete stream."""
        ...

    def error_event(self, exc: GatewayError) -> bytes:
        """The event that ends a failed stream."""
        ...


class RelayWire(Wire, Protocol):
    """A wire that also writes an OpenAI upstream's chunks as they came (the gateway's relay path)."""

    def relay_frames(self, batch: list[RelayChunk]) -> bytes:
        """The server-sent events of one batch of relayed chunks."""
        ...


def error_body(exc: GatewayError, flavor: str) -> bytes:
    """The error JSON in OpenAI's or Anthropic's shape."""
    return orjson.dumps(exc.anthropic_body() if flavor == "anthropic" else exc.openai_body())


def _head(headers: dict[str, str], base: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return base + [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class Exchange(Response):
    """The ASGI response of one model request: it runs the gateway, which sends through it."""

    def __init__(self, gateway: Gateway, ctx: RequestContext, request: Request, wire: Wire, max_body: int) -> None:
        # No super().__init__: the status and headers are known only once the gateway has decided.
        self.background = None
        self._gateway, self._ctx, self._request, self._wire, self._max_body = gateway, ctx, request, wire, max_body
        self._send: Send | None = None
        self._started = False  # the response head has gone out
        self._done = False  # the last byte has gone out
        self._watcher: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._disconnected = asyncio.Event()
        self._relay: Callable[[list[RelayChunk]], bytes] | None = getattr(wire, "relay_frames", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request; a client that disconnects ends it (recorded as 499)."""
        self._send = send
        try:
            await self._gateway.handle(self._ctx, self._parse, self)
        except asyncio.CancelledError:
            if not self._disconnected.is_set():
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except OSError:  # ASGI 2.4 servers raise on send after a disconnect
            pass
        finally:
            self._stop_watching()

    # reading ---------------------------------------------------------------------------------

    async def _parse(self) -> ModelRequest:
        data = parse_json(await read_body(self._request, self._max_body))
        if isinstance(data.get("model"), str):
            self._ctx.alias = data["model"]
        parsed = self._wire.parse(data)
        sender = asyncio.current_task()
        if data.get("stream") is True:
            self._watch_now(sender)
        else:  # most answers are done sooner: a timer costs far less than a task per request
            self._timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._watch_now, sender)
        return parsed

    def _watch_now(self, sender: asyncio.Task[Any] | None) -> None:
        self._timer = None
        if not self._done:
            self._watcher = asyncio.create_task(self._watch(sender))

    async def _watch(self, sender: asyncio.Task[Any] | None) -> None:
        receive = self._request.receive
        while (await receive())["type"] != "http.disconnect":
            pass
        self._disconnected.set()
        if sender is not None:
            sender.cancel()

    def _stop_watching(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    # the Sink --------------------------------------------------------------------------------

    async def _start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        assert self._send is not None
        self._started = True
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def _body(self, data: bytes, more: bool) -> None:
        assert self._send is not None
        if not more:
            self._done = True
            self._stop_watching()  # the answer is complete: a client that leaves now did not cut it short
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def answer(self, ctx: RequestContext, response: ModelResponse) -> None:
        """Send a complete answer as JSON."""
        body = self._wire.render(response)
        headers = _head(ctx.response_headers(), [*_JSON, (b"content-length", str(len(body)).encode())])
        await self._start(200, headers)
        await self._body(body, False)

    async def stream(self, ctx: RequestContext, first: list[ChatChunk], rest: Stream) -> None:
        """Send server-sent events, one write per batch, until the stream ends."""
        frames = self._wire.frames
        await self._events(ctx, first, rest, lambda batch: b"".join([f for chunk in batch for f in frames(chunk)]))

    @property
    def relays(self) -> bool:
        """Whether the wire writes relayed OpenAI chunks (`RelayWire`: chat completions)."""
        return self._relay is not None

    async def relay(self, ctx: RequestContext, first: list[RelayChunk], rest: RelayStream) -> None:
        """Send a relayed stream, as `stream` does."""
        assert self._relay is not None
        await self._events(ctx, first, rest, self._relay)

    async def _events(
        self, ctx: RequestContext, first: list[K], rest: AsyncIterator[list[K]], frames: Callable[[list[K]], bytes]
    ) -> None:
        await self._start(200, _head(ctx.response_headers(), _SSE))
        batch: list[K] | None = first
        while batch is not None:
            data = frames(batch)
            if getattr(batch, "last", False):
                await self._body(data + b"".join(self._wire.closing()), False)
                return
            if data:
                await self._body(data, True)
            batch = await anext(rest, None)
        await self._body(b"".join(self._wire.closing()), False)

    async def fail(self, ctx: RequestContext, exc: GatewayError) -> None:
        """Send the error JSON with its status, or end a started stream with an error event."""
        if self._done:
            return
        try:
            if not self._started:
                body = error_body(exc, self._wire.flavor)
                headers = {**error_headers(exc, self._wire.flavor), **ctx.response_headers()}
                await self._start(exc.status, _head(headers, [*_JSON, (b"content-length", str(len(body)).encode())]))
                await self._body(body, False)
            else:
                await self._body(self._wire.error_event(exc), False)
        except OSError:
            log.debug("the client left before the error of %s reached it", ctx.request_id)
