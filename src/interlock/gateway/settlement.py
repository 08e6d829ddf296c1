"""Settlement: usage -> cost -> one ledger row per request; budget reservations settled to actual.

Each authenticated request writes exactly one ledger row, whatever happens: success, a client
mistake, an upstream failure, a stream cut short or a client that disconnects.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from interlock.errors import GatewayError
from interlock.governance.admission import Admission, Governance
from interlock.auth.keys import Principal
from interlock.types import Price
from interlock.routing.deployments import Deployment
from interlock.store.records import UsageRecord
from interlock.types import ChatRequest, Usage

log = logging.getLogger(__name__)


def new_request_id() -> str:
    """A unique id for a request, ordered by time; not a secret.

    32 hex digits: milliseconds since the epoch (48 bits), then 80 random bits, the layout of a
    UUIDv7. Time first keeps the ledger's primary-key index append-only: with a random id every
    insert lands on a different page of that index, which the SQLite WAL then writes out (and
    checkpoints) page by page, and which PostgreSQL's B-tree splits at random. The random part comes
    from `random` (seeded from the OS at start and reseeded after a fork), not `os.urandom`: that is
    a getrandom() system call per request, and system calls are dear in a virtual machine.
    """
    return f"req_{int(time.time() * 1000):012x}{random.getrandbits(80):020x}"


@dataclass(slots=True)
class RequestContext:
    """Per-request facts every stage may read."""

    principal: Principal
    endpoint: str
    request_id: str = field(default_factory=new_request_id)
    ts: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    alias: str = ""
    deployment: Deployment | None = None
    attempts: int = 0
    restricted: bool = False  # data residency: only local/sovereign deployments
    cache: str = ""  # "hit" or "miss" when the response cache applies
    admission: Admission | None = None
    headers: dict[str, str] = field(default_factory=dict)  # added to the response (rate-limit state)
    recorded: bool = False


class Settlement:
    """Counts usage when the provider did not, prices it, writes the ledger row, settles budgets."""

    def __init__(
        self,
        record_usage: Callable[[UsageRecord], None],
        fallback_counter: tuple[str, Callable[[str], int | None]] | None = None,
        reference: Price | None = None,
        governance: Governance | None = None,
    ) -> None:
        self._record = record_usage
        self._fallback = fallback_counter
        self.reference = reference
        self.governance = governance
        self._tasks: set[asyncio.Task[None]] = set()

    def count(self, dep: Deployment, text: str) -> tuple[int, str]:
        """Tokens in `text` by the deployment's tokenizer, else the embedded model's, else an estimate."""
        n = dep.provider.count_tokens(text)
        if n is not None:
            return n, f"tokenizer:{dep.alias}"
        if self._fallback is not None:
            n = self._fallback[1](text)
            if n is not None:
                return n, f"tokenizer:{self._fallback[0]}"
        return (len(text) + 3) // 4, "estimate:chars/4"

    def usage(
        self, dep: Deployment, request: ChatRequest, reported: Usage | None, completion: str
    ) -> tuple[Usage, str]:
        """The provider's usage report, or our own count of the same tokens."""
        if reported is not None and (reported.prompt_tokens or reported.completion_tokens):
            return reported, "provider"
        prompt_text = "\n".join(m.text() for m in request.messages)
        prompt, source = self.count(dep, prompt_text)
        done, _ = self.count(dep, completion) if completion else (0, source)
        return Usage.of(prompt, done), source

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        # Settling a budget must not depend on the request's task surviving (a client may disconnect).
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for pending budget settlements (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _settle_budget(self, admission: Admission, cost: int, tokens: int) -> None:
        assert self.governance is not None
        try:
            await self.governance.settle(admission, cost, tokens)
        except Exception:
            log.exception("settling the budget of %s failed; its reservation expires on its own", admission.request_id)

    def settle(
        self,
        ctx: RequestContext,
        usage: Usage,
        source: str,
        *,
        status: int,
        ttft: float | None,
        error: str | None = None,
        stream: bool = False,
        cached: bool = False,
    ) -> None:
        """Write this request's one ledger row (a second call for the same request is ignored)."""
        if ctx.recorded or (ctx.principal.key_id is None and not ctx.principal.is_admin):
            return
        ctx.recorded = True
        dep = None if cached else ctx.deployment
        price = dep.price if dep else None
        cost = price.cost_micros(usage.prompt_tokens, usage.completion_tokens) if price else 0
        if ctx.admission is not None and self.governance is not None:
            self._background(self._settle_budget(ctx.admission, cost, usage.total_tokens))
        reference = self.reference.cost_micros(usage.prompt_tokens, usage.completion_tokens) if self.reference else 0
        self._record(
            UsageRecord(
                request_id=ctx.request_id,
                ts=ctx.ts,
                key_id=ctx.principal.key_id,
                endpoint=ctx.endpoint,
                alias=ctx.alias,
                provider=dep.provider.kind if dep else ("cache" if cached else ""),
                deployment=dep.name if dep else "",
                attempts=ctx.attempts or 1,
                upstream_model=dep.provider.upstream_model if dep else "",
                stream=stream,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                usage_source=source,
                cost_micros=cost,
                price_version=price.version if price else ("cache" if cached else ""),
                latency_ms=(time.perf_counter() - ctx.started) * 1000,
                ttft_ms=ttft,
                status=status,
                error=error,
                team_id=ctx.principal.team_id,
                org_id=ctx.principal.org_id,
                reference_cost_micros=reference,
            )
        )

    def settle_error(self, ctx: RequestContext, exc: GatewayError) -> None:
        """Record a request that failed before any tokens were produced."""
        self.settle(ctx, Usage(), "none", status=exc.status, ttft=None, error=exc.message[:500])
