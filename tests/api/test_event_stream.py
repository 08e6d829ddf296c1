"""EventStreamResponse at the ASGI level: one write per batch, and the closing frames with a `last` batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from interlock.api.http import EventStreamResponse
from interlock.errors import GatewayError, UpstreamError
from interlock.types import Batch, ChatChunk


def _chunk(text: str) -> ChatChunk:
    return ChatChunk.model_validate(
        {"id": "c", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"content": text}}]}
    )


class Recorder:
    """ASGI send/receive: records what is sent; the client never leaves."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def bodies(self) -> list[tuple[bytes, bool]]:
        return [(m["body"], m["more_body"]) for m in self.sent if m["type"] == "http.response.body"]


def _response(first: list[ChatChunk], rest: AsyncIterator[list[ChatChunk]]) -> EventStreamResponse[ChatChunk]:
    def encode(chunk: ChatChunk) -> list[bytes]:
        return [f"[{chunk.choices[0].delta.content}]".encode()]

    def on_error(exc: GatewayError) -> bytes:
        return f"<error {exc.message}>".encode()

    return EventStreamResponse(first, rest, encode, on_error, lambda: [b"<done>"])


async def _serve(response: EventStreamResponse[ChatChunk]) -> Recorder:
    recorder = Recorder()
    await response({"type": "http"}, recorder.receive, recorder.send)
    return recorder


async def test_a_last_batch_carries_the_closing_frames_and_the_stream_is_run_out_afterwards() -> None:
    recorder = Recorder()
    finished_after: list[int] = []

    async def rest() -> AsyncIterator[list[ChatChunk]]:
        try:
            yield Batch.final([_chunk("b"), _chunk("c")])
        finally:
            finished_after.append(len(recorder.sent))  # the pipeline settles here

    await _response([_chunk("a")], rest())({"type": "http"}, recorder.receive, recorder.send)
    assert recorder.bodies() == [(b"[a]", True), (b"[b][c]<done>", False)]
    assert finished_after == [len(recorder.sent)]  # after the client had the whole answer


async def test_without_a_last_batch_the_closing_frames_follow_the_end_of_the_stream() -> None:
    async def rest() -> AsyncIterator[list[ChatChunk]]:
        yield [_chunk("b")]

    recorder = await _serve(_response([_chunk("a")], rest()))
    assert recorder.bodies() == [(b"[a]", True), (b"[b]", True), (b"<done>", False)]


async def test_a_first_batch_that_is_last_is_the_whole_answer_in_one_write() -> None:
    async def rest() -> AsyncIterator[list[ChatChunk]]:
        return
        yield  # an async generator with nothing more

    recorder = await _serve(_response(Batch.final([_chunk("a"), _chunk("b")]), rest()))
    assert recorder.bodies() == [(b"[a][b]<done>", False)]


async def test_a_failure_mid_stream_ends_with_the_error_event_not_the_closing_frames() -> None:
    async def rest() -> AsyncIterator[list[ChatChunk]]:
        yield [_chunk("b")]
        raise UpstreamError("the upstream cut the response short")

    recorder = await _serve(_response([_chunk("a")], rest()))
    assert recorder.bodies() == [
        (b"[a]", True),
        (b"[b]", True),
        (b"<error the upstream cut the response short>", False),
    ]


async def test_a_stream_that_goes_on_after_its_last_batch_is_cut_there() -> None:
    async def rest() -> AsyncIterator[list[ChatChunk]]:
        yield Batch.final([_chunk("b")])
        yield [_chunk("late")]

    recorder = await _serve(_response([_chunk("a")], rest()))
    assert recorder.bodies() == [(b"[a]", True), (b"[b]<done>", False)]
