"""A streamed answer between its upstream and the sink: its first batch, then every batch through the tally and
the `on_batch` hooks, and a closing usage chunk of the gateway's own count when the upstream reported none.

Two forms of the same pipeline: `chat_batches` carries `ChatChunk`s (every provider, every wire, every
hook); `relay_batches` carries an OpenAI upstream's chunks as they came (`translate.openai_relay`), for
an OpenAI chat client, when no hook has to see the chunks (`Gateway` decides; see the README, "Hooks").
The relayed form runs the tally and the hooks that work on relayed chunks too (`RelayHook`: the budget
backstop), nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from interlock.errors import GatewayError, UpstreamError, UpstreamTimeout
from interlock.plugins.hooks import CutStream, Hook
from interlock.translate.openai_relay import RelayBatch, RelayChunk
from interlock.types import Batch, ChatChunk, ChatRequest

if TYPE_CHECKING:
    from interlock.gateway.context import RequestContext
    from interlock.gateway.settlement import TokenCounter

Stream = AsyncIterator[list[ChatChunk]]
RelayStream = AsyncIterator[list[RelayChunk]]
K = TypeVar("K", ChatChunk, RelayChunk)


class Cut(Exception, Generic[K]):
    """A stream cut by a hook: `kept` is delivered, then `error` ends the stream."""

    def __init__(self, error: GatewayError, kept: list[K]) -> None:
        super().__init__(error.message)
        self.error = error
        self.kept: list[K] = kept


@runtime_checkable
class RelayHook(Protocol):
    """A gateway hook whose `on_batch` also works on relayed chunks: on a relayed stream it gets those.

    It may return fewer chunks or raise `Cut`, and must not hold chunks back for a later batch (a relayed
    stream that fails upstream ends at once, with nothing left to release).
    """

    async def on_relay(self, ctx: RequestContext, batch: list[RelayChunk]) -> list[RelayChunk]:
        """Check a batch of relayed chunks."""
        ...


@dataclass(slots=True)
class StreamHooks:
    """What the batches of an endpoint's streams go through."""

    on_batch: Sequence[Hook[RequestContext]]  # every hook with an `on_batch`, in order
    relay: Sequence[RelayHook]  # those of them that take relayed chunks
    counter: TokenCounter


async def nothing() -> Stream:
    """A stream with no batches (a cached answer is replayed as one final batch before it)."""
    return
    yield


async def close_stream(stream: AsyncIterator[Any]) -> None:
    """Close an upstream stream now (its connection goes back to the pool), if it can be closed."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def open_stream(stream: AsyncIterator[list[K]], within_s: float) -> tuple[AsyncIterator[list[K]], list[K]]:
    """Start a stream and wait for its first chunks; failures here may still be retried (failover)."""
    try:
        async with asyncio.timeout(within_s):
            first = await anext(stream)
            while not first:
                first = await anext(stream)
    except StopAsyncIteration:
        raise UpstreamError(
            "the upstream ended the stream without sending anything", code="upstream_truncated"
        ) from None
    except TimeoutError:
        await close_stream(stream)
        raise UpstreamTimeout(f"no first token within {within_s:g} s") from None
    except BaseException:
        await close_stream(stream)
        raise
    return stream, first


def counted(ctx: RequestContext, request: ChatRequest, counter: TokenCounter) -> list[ChatChunk]:
    """A usage chunk of the counted usage when the upstream reported none, else nothing.

    The tally does not see it, so the ledger's count in `Gateway.handle` (the same call on the same
    tally) gives the same numbers, and every wire's closing frames (`response.completed`,
    `message_delta`, chat's `include_usage` chunk) carry the numbers the ledger row gets.
    """
    tally, dep = ctx.tally, ctx.deployment
    if tally is None or dep is None or tally.opening is None:
        return []
    usage, source = counter.usage(dep, request, tally.reported, tally.generated())
    if source == "provider":
        return []
    id_, created, model = tally.opening
    return [ChatChunk(id=id_, created=created, model=model, usage=usage)]


async def _chat_batch(ctx: RequestContext, batch: list[ChatChunk], hooks: StreamHooks) -> list[ChatChunk]:
    """One upstream batch through the tally and the `on_batch` hooks; a cut delivers its part, then fails."""
    tally = ctx.tally
    assert tally is not None
    for chunk in batch:
        tally.observe(chunk)
    last = getattr(batch, "last", False)
    for i, hook in enumerate(hooks.on_batch):
        try:
            batch = await hook.on_batch(ctx, batch)
        except CutStream as cut:
            kept = cut.keep
            for later in hooks.on_batch[i + 1 :]:
                kept = await later.on_batch(ctx, kept)
            raise Cut(cut.error, kept) from None
    if last and not getattr(batch, "last", False):
        batch = Batch.final(batch)
    return batch


async def chat_batches(
    ctx: RequestContext, request: ChatRequest, first: list[ChatChunk], live: Stream, hooks: StreamHooks
) -> AsyncGenerator[list[ChatChunk], None]:
    """The stream, batch by batch, through `_chat_batch`; a cut batch delivers what it kept, then fails."""
    batch: list[ChatChunk] | None = first
    while batch is not None:
        try:
            out = await _chat_batch(ctx, batch, hooks)
        except Cut as cut:
            if cut.kept:
                yield cut.kept
            raise cut.error from None
        if getattr(out, "last", False):
            yield Batch.final([*out, *counted(ctx, request, hooks.counter)])
            return
        yield out
        try:
            batch = await anext(live, None)
        except GatewayError:
            # The upstream failed mid-stream: what the hooks hold back (text being scanned) is released
            # first, through one empty last batch, then the error ends the stream.
            try:
                held = await _chat_batch(ctx, Batch.final([]), hooks)
            except Cut as cut:
                held = cut.kept
            if held:
                yield list(held)  # not a last batch: the stream ends with the error, not [DONE]
            raise
    closing = counted(ctx, request, hooks.counter)
    if closing:
        yield Batch.final(closing)


async def _relay_batch(ctx: RequestContext, batch: list[RelayChunk], hooks: StreamHooks) -> list[RelayChunk]:
    """`_chat_batch` for relayed chunks: the tally, then the hooks that take relayed chunks."""
    tally = ctx.tally
    assert tally is not None
    for chunk in batch:
        tally.observe_relay(chunk)
    last = getattr(batch, "last", False)
    for hook in hooks.relay:
        batch = await hook.on_relay(ctx, batch)
    if last and not getattr(batch, "last", False):
        batch = RelayBatch.final(batch)
    return batch


async def relay_batches(
    ctx: RequestContext, request: ChatRequest, first: list[RelayChunk], live: RelayStream, hooks: StreamHooks
) -> AsyncGenerator[list[RelayChunk], None]:
    """`chat_batches` for relayed chunks (nothing is held back, so an upstream failure ends it at once)."""
    batch: list[RelayChunk] | None = first
    while batch is not None:
        try:
            out = await _relay_batch(ctx, batch, hooks)
        except Cut as cut:
            if cut.kept:
                yield cut.kept
            raise cut.error from None
        if getattr(out, "last", False):
            yield RelayBatch.final([*out, *map(RelayChunk.of, counted(ctx, request, hooks.counter))])
            return
        yield out
        batch = await anext(live, None)
    closing = counted(ctx, request, hooks.counter)
    if closing:
        yield RelayBatch.final([RelayChunk.of(c) for c in closing])
