"""The exchange at the ASGI level: one write per batch, the closing frames with a `last` batch, and the
gateway settling only after the client has the whole answer (or has gone)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

from starlette.requests import Request

from interlock.api.exchange import Exchange
from interlock.auth.keys import ADMIN
from interlock.errors import GatewayError, UpstreamError
from interlock.gateway.context import RequestContext
from interlock.plugins.hooks import ModelRequest, ModelResponse
from interlock.types import Batch, ChatChunk, ChatRequest

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true}'


def _chunk(text: str) -> ChatChunk:
    return ChatChunk.model_validate(
        {"id": "c", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"content": text}}]}
    )


class Wire:
    flavor: ClassVar[str] = "openai"

    def __init__(self, ctx: RequestContext) -> None:
        pass

    def parse(self, data: dict[str, Any]) -> ModelRequest:
        return ChatRequest.model_validate(data)

    def render(self, response: ModelResponse) -> bytes:
        return b"{}"

    def frames(self, chunk: ChatChunk) -> list[bytes]:
        return [f"[{chunk.choices[0].delta.content}]".encode()]

    def closing(self) -> list[bytes]:
        return [b"<done>"]

    def error_event(self, exc: GatewayError) -> bytes:
        return f"<error {exc.message}>".encode()


class Client:
    """ASGI send/receive: sends the body, then waits (or disconnects when told); records what is sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.leave = asyncio.Event()
        self._body_sent = False

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await self.leave.wait()
        return {"type": "http.disconnect"}

    def bodies(self) -> list[tuple[bytes, bool]]:
        return [(m["body"], m["more_body"]) for m in self.sent if m["type"] == "http.response.body"]


class Gateway:
    """Runs the exchange like the real gateway: parse, stream into the sink, fail into it, settle last."""

    def __init__(self, client: Client, first: list[ChatChunk], rest: AsyncIterator[list[ChatChunk]]) -> None:
        self.client, self.first, self.rest = client, first, rest
        self.settled_after: list[int] = []
        self.outcome = ""

    async def handle(self, ctx: RequestContext, parse: Callable[[], Awaitable[ModelRequest]], sink: Any) -> None:
        try:
            await parse()
            await sink.stream(ctx, self.first, self.rest)
            self.outcome = "ok"
        except GatewayError as exc:
            self.outcome = exc.message
            await sink.fail(ctx, exc)
        except asyncio.CancelledError:
            self.outcome = "client left"
            raise
        finally:
            self.settled_after.append(len(self.client.sent))


async def _serve(first: list[ChatChunk], rest: AsyncIterator[list[ChatChunk]]) -> tuple[Client, Gateway]:
    client = Client()
    gateway = Gateway(client, first, rest)
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    ctx = RequestContext(principal=ADMIN, endpoint="chat")
    exchange = Exchange(gateway, ctx, Request(scope, client.receive), Wire(ctx), 1 << 20)  # type: ignore[arg-type]
    await exchange(scope, client.receive, client.send)
    return client, gateway


async def _nothing() -> AsyncIterator[list[ChatChunk]]:
    return
    yield


async def test_a_last_batch_carries_the_closing_frames_and_settling_comes_after() -> None:
    async def rest() -> AsyncIterator[list[ChatChunk]]:
        yield Batch.final([_chunk("b"), _chunk("c")])

    client, gateway = await _serve([_chunk("a")], rest())
    assert client.bodies() == [(b"[a]", True), (b"[b][c]<done>", False)]
    assert gateway.settled_after == [len(client.sent)]  # after the client had the whole answer


async def test_without_a_last_batch_the_closing_frames_follow_the_end_of_the_stream() -> None:
    async def rest() -> AsyncIterator[list[ChatChunk]]:
        yield [_chunk("b")]

    client, _ = await _serve([_chunk("a")], rest())
    assert client.bodies() == [(b"[a]", True), (b"[b]", True), (b"<done>", False)]


async def test_a_first_batch_that_is_last_is_the_whole_answer_in_one_write() -> None:
    client, _ = await _serve(Batch.final([_chunk("a"), _chunk("b")]), _nothing())
    assert client.bodies() == [(b"[a][b]<done>", False)]
    assert [m["status"] for m in client.sent if m["type"] == "http.response.start"] == [200]


async def test_a_failure_mid_stream_ends_with_the_error_event_not_the_closing_frames() -> None:
    async def rest() -> AsyncIterator[list[ChatChunk]]:
        yield [_chunk("b")]
        raise UpstreamError("the upstream cut the response short")

    client, gateway = await _serve([_chunk("a")], rest())
    assert client.bodies() == [
        (b"[a]", True),
        (b"[b]", True),
        (b"<error the upstream cut the response short>", False),
    ]
    assert gateway.outcome == "the upstream cut the response short"


async def test_a_stream_that_goes_on_after_its_last_batch_is_cut_there() -> None:
    async def rest() -> AsyncIterator[list[ChatChunk]]:
        yield Batch.final([_chunk("b")])
        yield [_chunk("late")]

    client, _ = await _serve([_chunk("a")], rest())
    assert client.bodies() == [(b"[a]", True), (b"[b]<done>", False)]


async def test_a_client_that_leaves_mid_stream_cancels_the_request_and_it_still_settles() -> None:
    holder: list[Client] = []

    async def rest() -> AsyncIterator[list[ChatChunk]]:
        yield [_chunk("b")]
        holder[0].leave.set()
        await asyncio.sleep(30)  # the upstream is slow; the client gives up
        yield [_chunk("never")]

    client = Client()
    holder.append(client)
    gateway = Gateway(client, [_chunk("a")], rest())
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    ctx = RequestContext(principal=ADMIN, endpoint="chat")
    exchange = Exchange(gateway, ctx, Request(scope, client.receive), Wire(ctx), 1 << 20)  # type: ignore[arg-type]
    async with asyncio.timeout(5):
        await exchange(scope, client.receive, client.send)  # returns: the cancellation is absorbed
    assert gateway.outcome == "client left"
    assert gateway.settled_after == [len(client.sent)]
    assert client.bodies() == [(b"[a]", True), (b"[b]", True)]
