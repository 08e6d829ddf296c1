"""Shadow answers: a shadow variant answers the same request in the background, and nobody sees it.

When a request to an alias with shadow variants succeeds, `Shadows.spawn` starts, for each shadow the request
drew (`routing.variants.VariantSet.shadows`), the same request (not streamed) to that variant's alias through
`Gateway.handle` with the endpoint "shadow": it runs only the hooks that account for it (residency, the budget,
the ledger, capture), so it is reserved and settled like any other request, and its answer goes to a sink that
throws it away. At most `limit` run at once; more are skipped and counted (`dropped`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from interlock.errors import GatewayError
from interlock.gateway.context import RequestContext
from interlock.plugins.hooks import ModelRequest, ModelResponse
from interlock.settings import VariantSettings
from interlock.translate.openai_relay import RelayChunk
from interlock.types import ChatChunk, ChatRequest

log = logging.getLogger(__name__)

SHADOW = "shadow"  # the endpoint of a shadow variant's answer (its ledger rows say so)
Handle = Callable[[RequestContext, Callable[[], Awaitable[ModelRequest]], "Discard"], Awaitable[None]]


class Discard:
    """The sink of a shadow answer: nothing reaches a client."""

    async def answer(self, ctx: RequestContext, response: ModelResponse) -> None:
        """Drop a complete answer."""

    async def stream(self, ctx: RequestContext, first: list[ChatChunk], rest: AsyncIterator[list[ChatChunk]]) -> None:
        """Drain a stream (so it settles as read to its end)."""
        async for _ in rest:
            pass

    relays = False  # a shadow answer is never streamed

    async def relay(self, ctx: RequestContext, first: list[RelayChunk], rest: AsyncIterator[list[RelayChunk]]) -> None:
        """Drain a relayed stream."""
        async for _ in rest:
            pass

    async def fail(self, ctx: RequestContext, exc: GatewayError) -> None:
        """Drop an error (the ledger row has it)."""


class Shadows:
    """The shadow answers running in the background (see the module docstring)."""

    def __init__(self, handle: Handle, limit: int = 16) -> None:
        self._handle = handle
        self._limit = limit
        self.tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0  # shadow answers skipped because `limit` were running

    def spawn(self, of: RequestContext, request: ChatRequest) -> None:
        """Start the shadow variants' answers to `request` (never awaited by the client)."""
        for variant in of.shadows:
            if len(self.tasks) >= self._limit:
                self.dropped += 1
                log.info("shadow %r of %s skipped: %d shadows running", variant.name, of.alias, self._limit)
                continue
            task = asyncio.get_running_loop().create_task(
                self._one(of, request, variant), name=f"interlock-shadow-{variant.name}"
            )
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _one(self, of: RequestContext, request: ChatRequest, variant: VariantSettings) -> None:
        ctx = RequestContext(
            principal=of.principal, endpoint=SHADOW, operation=of.operation, alias=of.alias, run_id=of.run_id,
            restricted=of.restricted, variant=variant.name, shadow_of=of.request_id, user_agent=of.user_agent,
        )  # fmt: skip
        copy = request.model_copy(update={"model": variant.model, "stream": False, "stream_options": None})

        async def parse() -> ModelRequest:
            return copy

        try:
            await self._handle(ctx, parse, Discard())
        except Exception:  # settled by `handle`; a shadow never disturbs anything else
            log.exception("shadow %r of request %s failed", variant.name, of.request_id)

    async def close(self) -> None:
        """Stop the shadow answers still running (each is settled as its task ends)."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
