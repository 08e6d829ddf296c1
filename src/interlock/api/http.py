"""HTTP plumbing shared by the endpoints: body limits, JSON parsing, keys, error responses, SSE."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

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

log = logging.getLogger(__name__)

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


async def first_batch(stream: AsyncIterator[list[T]]) -> list[T]:
    """The first batch of a stream, pulled before any byte is sent so early failures get a real status."""
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


def is_policy_denial(exc: GatewayError, attempted: bool) -> bool:
    """Whether an error is a policy decision to deny (audited), not a failure of the model or the input."""
    if exc.status in (401, 403):
        return True
    return exc.status == 429 and not attempted and exc.code in ("budget_exceeded", "rate_limit_exceeded")


class EventStreamResponse(Response, Generic[T]):
    """Server-sent events for a stream of batches: each batch is one write.

    `first` (already pulled, so early failures got a real status) and then `rest` are encoded frame by
    frame with `encode`; the frames of one batch (chunks that arrived in one upstream read) go out in
    one write. A failure after the first byte ends in an `on_error` event, never cleanly, because a
    clean end looks like a complete answer. A normal end sends `closing()` in the final write: with the
    frames of a batch marked `last` (see `types.Batch`), else on its own once `rest` is exhausted.
    After a `last` batch, `rest` is still run to its end, after the client has its answer: that is
    where the pipeline settles the request.

    Starlette's StreamingResponse watches for a client disconnect inside an anyio task group, which
    costs about 0.1 ms per response here; one plain task that cancels the sender does the same job.
    A disconnect closes `rest`, so the pipeline records the request as abandoned (499).
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        first: list[T],
        rest: AsyncIterator[list[T]],
        encode: Callable[[T], list[bytes]],
        on_error: Callable[[GatewayError], bytes],
        closing: Callable[[], list[bytes]],
        headers: dict[str, str] | None = None,
    ) -> None:
        # No super().__init__: it would render an empty body and send `content-length: 0`.
        self.status_code = 200
        self.background = None
        self._first, self._rest = first, rest
        self._encode, self._on_error, self._closing = encode, on_error, closing
        self.init_headers({**(headers or {}), "cache-control": "no-cache"})

    def _frames(self, batch: list[T]) -> bytes:
        encode = self._encode
        return b"".join([frame for item in batch for frame in encode(item)])

    async def _send_batches(self, send: Send) -> tuple[bytes, bool]:
        """Send each batch in one write, as soon as it is ready; return what ends the stream.

        That is the closing frames (after the frames of a `last` batch), or an error event when the
        stream failed; and whether `rest` still has to be run to its end. A failed send (the client is
        gone) propagates.
        """
        batch: list[T] | None = self._first
        try:
            while batch is not None:
                data = self._frames(batch)
                if getattr(batch, "last", False):
                    return data + b"".join(self._closing()), True
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                batch = await anext(self._rest, None)
        except GatewayError as exc:
            return self._on_error(exc), False
        except OSError:
            raise
        except Exception:
            log.exception("internal error while streaming")
            return self._on_error(GatewayError("internal error while streaming; the answer is incomplete")), False
        return b"".join(self._closing()), False

    async def _run_out(self) -> None:
        """Run `rest` to its end after its last batch was sent (that is where the pipeline settles)."""
        try:
            async for _ in self._rest:
                log.error("a stream went on after its last batch; what followed was dropped")
        except Exception:
            log.exception("a stream failed after its last batch was sent")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the frames until the stream ends or the client goes away."""
        sender = asyncio.current_task()
        assert sender is not None
        disconnected = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()
            sender.cancel()

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            tail, unfinished = await self._send_batches(send)
            await send({"type": "http.response.body", "body": tail, "more_body": False})
            if unfinished:
                watcher.cancel()  # the answer is complete: a client that leaves now did not cut it short
                await self._run_out()
        except asyncio.CancelledError:
            if not disconnected.is_set():
                raise
            sender.uncancel()
        except OSError:  # ASGI 2.4 servers raise on send after a disconnect
            pass
        finally:
            watcher.cancel()
            await _aclose(self._rest)


async def _aclose(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
