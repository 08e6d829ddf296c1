"""HTTP plumbing shared by the endpoints: body limits, JSON parsing, keys, error responses, SSE."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from interlock.errors import (
    BadRequest,
    GatewayError,
    PayloadTooLarge,
    UpstreamError,
    describe_validation_error,
)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class JSONResponse(Response):
    """A JSON response rendered with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise with orjson."""
        return orjson.dumps(content)


def model_response(model: BaseModel, headers: dict[str, str] | None = None) -> Response:
    """A pydantic model as a JSON response."""
    return Response(model.model_dump_json(exclude_none=False), media_type="application/json", headers=headers)


def error_response(exc: GatewayError, flavor: str = "openai", headers: dict[str, str] | None = None) -> Response:
    """The error as OpenAI's (or Anthropic's) JSON, with its status and headers."""
    body = exc.anthropic_body() if flavor == "anthropic" else exc.openai_body()
    return JSONResponse(body, status_code=exc.status, headers={**exc.headers, **(headers or {})})


def bearer_token(request: Request) -> str | None:
    """The key from `Authorization: Bearer` or `x-api-key` (Anthropic's SDK)."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return request.headers.get("x-api-key") or None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> dict[str, Any]:
    """A JSON object from the body, or a 400 saying what is wrong with it."""
    if not raw:
        raise BadRequest("request body is empty; send a JSON object", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest(f"request body must be a JSON object, not {type(data).__name__}", code="invalid_json")
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    """`data` as `model`, or a 400 naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise describe_validation_error(exc) from None


async def first_chunk(stream: AsyncIterator[T]) -> T:
    """The first item of a stream, pulled before any byte is sent so early failures get a real status."""
    try:
        return await anext(stream)
    except StopAsyncIteration:
        raise UpstreamError(
            "the upstream ended the stream without sending anything", code="upstream_truncated"
        ) from None


def sse_frame(data: bytes, event: str | None = None) -> bytes:
    """One server-sent event."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + data + b"\n\n"


async def sse_stream(
    first: Any,
    rest: AsyncIterator[Any],
    encode: Callable[[Any], list[bytes]],
    on_error: Callable[[GatewayError], bytes],
    closing: Callable[[], list[bytes]],
) -> AsyncIterator[bytes]:
    """Frames for `first` and `rest`; a failure after the first byte ends in an error event, never cleanly."""
    for frame in encode(first):
        yield frame
    try:
        async for item in rest:
            for frame in encode(item):
                yield frame
    except GatewayError as exc:
        yield on_error(exc)
        return
    except Exception:
        yield on_error(GatewayError("internal error while streaming; the answer is incomplete"))
        return
    for frame in closing():
        yield frame


def is_policy_denial(exc: GatewayError, attempted: bool) -> bool:
    """Whether an error is a policy decision to deny (audited), not a failure of the model or the input."""
    if exc.status in (401, 403):
        return True
    return exc.status == 429 and not attempted and exc.code in ("budget_exceeded", "rate_limit_exceeded")


class EventStreamResponse(Response):
    """Server-sent events from an async iterator of frames.

    Starlette's StreamingResponse watches for a client disconnect inside an anyio task group, which
    costs about 0.1 ms per response here; one plain task that cancels the sender does the same job.
    A disconnect cancels the body iterator, so the pipeline records the request as abandoned (499).
    """

    media_type = "text/event-stream"

    def __init__(self, body: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> None:
        # No super().__init__: it would render an empty body and send `content-length: 0`.
        self.status_code = 200
        self.background = None
        self.body_iterator = body
        self.init_headers({**(headers or {}), "cache-control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the frames until the iterator ends or the client goes away."""
        sender = asyncio.current_task()
        assert sender is not None
        disconnected = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()
            sender.cancel()

        watcher = asyncio.create_task(watch())
        frames = _FrameBuffer(self.body_iterator)
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for data in frames:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not disconnected.is_set():
                raise
            sender.uncancel()
        except OSError:  # ASGI 2.4 servers raise on send after a disconnect
            pass
        finally:
            watcher.cancel()
            await frames.aclose()


class _FrameBuffer:
    """Reads frames in a task of its own and hands out everything ready as one write.

    An upstream read usually carries several SSE events; writing them together saves a trip through
    the ASGI send chain per frame. At most `limit` frames wait, so a slow client slows the reader down
    instead of growing memory.
    """

    def __init__(self, frames: AsyncIterator[bytes], limit: int = 64) -> None:
        self._pending: list[bytes] = []
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._limit = limit
        self._done = False
        self._task = asyncio.create_task(self._read(frames))

    async def _read(self, frames: AsyncIterator[bytes]) -> None:
        try:
            async for frame in frames:
                self._pending.append(frame)
                self._ready.set()
                if len(self._pending) >= self._limit:
                    self._space.clear()
                    await self._space.wait()
        finally:
            self._done = True
            self._ready.set()

    def __aiter__(self) -> _FrameBuffer:
        return self

    async def __anext__(self) -> bytes:
        while not self._pending:
            if self._done:
                await self._task  # re-raise what ended the reader, if anything
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        data = b"".join(self._pending)
        self._pending.clear()
        self._space.set()
        return data

    async def aclose(self) -> None:
        """Stop reading (cancelling the frame source, so an abandoned stream is recorded as such)."""
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
