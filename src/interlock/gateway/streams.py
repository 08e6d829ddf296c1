"""Small pieces of the gateway's stream handling: a cut stream, an empty stream, closing an upstream stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

from interlock.errors import GatewayError
from interlock.types import ChatChunk

Stream = AsyncIterator[list[ChatChunk]]


class Cut(Exception):
    """A stream cut by a hook: `kept` is delivered, then `error` ends the stream."""

    def __init__(self, error: GatewayError, kept: list[ChatChunk]) -> None:
        super().__init__(error.message)
        self.error, self.kept = error, kept


async def nothing() -> Stream:
    """A stream with no batches (a cached answer is replayed as one final batch before it)."""
    return
    yield


async def close_stream(stream: Stream) -> None:
    """Close an upstream stream now (its connection goes back to the pool), if it can be closed."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
