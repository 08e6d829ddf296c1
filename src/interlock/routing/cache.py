"""An exact-match response cache, opt-in per key or per model, in memory or in Redis.

The cache key is a SHA-256 of the normalised request (every field that can change the answer,
with keys sorted) *and the caller's key id*, so one tenant never sees another's answers. Only
complete, successful answers are stored. A hit is answered without calling any model, marked with
`x-interlock-cache: hit`, and recorded in the ledger at zero cost.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Protocol

import orjson

from interlock.types import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    ToolCallDelta,
    Usage,
)

# Fields that do not change the answer; everything else is part of the key.
_IGNORED = {"stream", "stream_options", "user", "metadata"}


def cache_key(key_id: str | None, request: ChatRequest) -> str:
    """The cache key of `request` made by `key_id`."""
    body = request.model_dump(exclude_none=True, by_alias=True, exclude=_IGNORED)
    digest = hashlib.sha256(orjson.dumps([key_id or "admin", body], option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"interlock:cache:{digest}"


class ResponseCache(Protocol):
    """Where cached answers live."""

    async def get(self, key: str) -> ChatResponse | None: ...
    async def put(self, key: str, response: ChatResponse, ttl_s: int) -> None: ...
    async def close(self) -> None: ...


class MemoryCache:
    """A bounded LRU in this process, with per-entry expiry."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> ChatResponse | None:
        """The cached answer, if present and fresh."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, raw = entry
        if expires <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return ChatResponse.model_validate_json(raw)

    async def put(self, key: str, response: ChatResponse, ttl_s: int) -> None:
        """Store an answer for `ttl_s` seconds, evicting the least recently used beyond the bound."""
        self._entries[key] = (time.monotonic() + ttl_s, response.model_dump_json().encode())
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        """Nothing to release."""


class RedisCache:
    """Answers in Redis with native expiry, shared by every replica."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url)

    async def get(self, key: str) -> ChatResponse | None:
        """The cached answer, if present."""
        raw = await self._redis.get(key)
        return None if raw is None else ChatResponse.model_validate_json(raw)

    async def put(self, key: str, response: ChatResponse, ttl_s: int) -> None:
        """Store an answer for `ttl_s` seconds."""
        await self._redis.set(key, response.model_dump_json(), ex=ttl_s)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def open_cache(url: str, max_entries: int) -> ResponseCache:
    """A Redis cache for a redis:// URL, else an in-process one."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCache(url)
    return MemoryCache(max_entries)


def replay_as_chunks(response: ChatResponse) -> list[ChatChunk]:
    """A cached answer as a stream: role, the whole text, the finish reason, then usage."""

    def chunk(delta: Delta, finish: str | None = None) -> ChatChunk:
        return ChatChunk(
            id=response.id,
            created=response.created,
            model=response.model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
        )

    choice = response.choices[0]
    calls = [
        ToolCallDelta(
            index=i, id=c.id, type="function", function={"name": c.function.name, "arguments": c.function.arguments}
        )
        for i, c in enumerate(choice.message.tool_calls or [])
    ]
    return [
        chunk(Delta(role="assistant", content="")),
        chunk(Delta(content=choice.message.content, tool_calls=calls or None)),
        chunk(Delta(), choice.finish_reason),
        ChatChunk(id=response.id, created=response.created, model=response.model, usage=response.usage),
    ]


def assemble(first: ChatChunk, text: str, finish: str, usage: Usage) -> ChatResponse:
    """A complete answer from a finished text stream, for the cache."""
    return ChatResponse(
        id=first.id,
        created=first.created,
        model=first.model,
        choices=[Choice(message=AssistantMessage(content=text), finish_reason=finish)],
        usage=usage,
    )
