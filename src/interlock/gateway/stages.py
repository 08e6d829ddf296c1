"""The built-in hooks of the request path: residency, the response cache, governance, the ledger row,
and the audit of denials. Each is an ordinary `plugins.Hook`; the gateway puts them in its lists
around the hooks that plugins add (see `Gateway.__init__` for the order).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from interlock.audit.log import AuditEvent, AuditLog
from interlock.errors import BudgetExceeded, GatewayError, Unavailable
from interlock.gateway.context import RequestContext
from interlock.gateway.settlement import TokenCounter, delta_text
from interlock.gateway.streams import Cut
from interlock.governance.admission import Governance
from interlock.governance.bounds import chat_prompt_bound, embedding_prompt_bound
from interlock.governance.counters import CountersUnavailable
from interlock.plugins.hooks import Answered, CutStream, Denied, Hook, ModelRequest, ModelResponse, Outcome
from interlock.routing.cache import ResponseCache, assemble, cache_key
from interlock.store.records import UsageRecord
from interlock.translate.openai_relay import RelayChunk
from interlock.types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, Price

log = logging.getLogger(__name__)


RESIDENT_TAGS = frozenset({"local", "sovereign"})
SETTLE_TRIES = 12  # with backoff from 0.1 s doubling to 5 s: about 40 s of retries
SETTLE_FIRST_RETRY_S = 0.1


class Background:
    """Tasks that must outlive the request that started them (a client may disconnect first)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def run(self, coro: Coroutine[Any, Any, None]) -> None:
        """Start `coro` now; it is awaited by `drain`."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for what is pending (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _used_up() -> BudgetExceeded:
    return BudgetExceeded("the budget reserved for this request is used up; the answer is cut short")


def is_resident(tags: list[str]) -> bool:
    """Whether a deployment with these tags may serve a residency-restricted request."""
    return not RESIDENT_TAGS.isdisjoint(tags)


class Residency(Hook[RequestContext]):
    """A restricted request only goes to local or sovereign deployments; none left is a 403."""

    name = "residency"

    async def before(self, ctx: RequestContext, request: ModelRequest) -> ModelRequest:
        """Drop the deployments that may not serve a restricted request."""
        if not ctx.restricted:
            return request
        allowed = [d for d in ctx.plan if is_resident(d.model.tags)]
        if not allowed:
            why = ctx.notes.get("residency_reason")
            raise Denied(
                f"this request is restricted to local or sovereign deployments (data residency"
                f"{'; ' + str(why) if why else ''}), and model '{ctx.alias}' has none; use a model tagged 'local' "
                "or 'sovereign'",
                code="residency_restricted",
            )
        ctx.plan = allowed
        return request


class Cache(Hook[RequestContext]):
    """Exact-match answers from the response cache, and complete answers stored into it."""

    name = "cache"

    def __init__(self, cache: ResponseCache, background: Background) -> None:
        self._cache = cache
        self._background = background

    def _key(self, ctx: RequestContext, request: ModelRequest) -> tuple[str, int] | None:
        if not isinstance(request, ChatRequest) or ctx.route is None or not ctx.cacheable:
            return None
        ttl = max(ctx.route.model.cache_ttl_s, ctx.principal.cache_ttl_s)
        return (cache_key(ctx.principal.key_id, request), ttl) if ttl > 0 else None

    async def before(self, ctx: RequestContext, request: ModelRequest) -> ModelRequest:
        """Answer from the cache on a hit."""
        key = self._key(ctx, request)
        if key is None:
            return request
        hit = await self._cache.get(key[0])
        ctx.cache = "miss" if hit is None else "hit"
        if hit is not None:
            raise Answered(hit, source="cache")
        ctx.notes[self.name] = key
        return request

    async def after(self, ctx: RequestContext, response: ModelResponse) -> ModelResponse:
        """Store a complete answer."""
        key = ctx.notes.get(self.name)
        if isinstance(key, tuple) and isinstance(response, ChatResponse) and response.choices:
            await self._cache.put(key[0], response, key[1])
        return response

    def finish(self, ctx: RequestContext, outcome: Outcome) -> None:
        """Store a streamed answer that finished normally (streamed tool calls are not cached)."""
        key = ctx.notes.get(self.name)
        tally = ctx.tally
        if not ctx.stream or not isinstance(key, tuple) or tally is None or outcome.status != 200:
            return
        head = tally.head()
        if tally.finish is None or tally.tool_calls or head is None:
            return
        answer = assemble(head, "".join(tally.pieces), tally.finish, outcome.usage)
        self._background.run(self._cache.put(key[0], answer, key[1]))


class Admission(Hook[RequestContext]):
    """Rate limits and the budget reservation before the call; the stream backstop; the budget settled after."""

    name = "governance"

    def __init__(
        self, governance: Governance, counter: TokenCounter, background: Background, image_tokens: int
    ) -> None:
        self._gov = governance
        self._counter = counter
        self._background = background
        self._image_tokens = image_tokens

    async def before(self, ctx: RequestContext, request: ModelRequest) -> ModelRequest:
        """Admit the request, reserving the worst case at the most expensive deployment it may reach."""
        if not ctx.plan or not self._gov.applies(ctx.principal, ctx.alias):
            return request
        reach = ctx.reach or ctx.plan
        # One deployment (most aliases): its own price is the worst case; admission reads only the rates.
        worst = (
            reach[0].price
            if len(reach) == 1
            else Price(
                max(d.price.input_per_mtok for d in reach), max(d.price.output_per_mtok for d in reach), "worst-case"
            )
        )
        out: int | None = 0
        if isinstance(request, EmbeddingRequest):
            bound = embedding_prompt_bound(request)
        else:
            bound, out = chat_prompt_bound(request, self._image_tokens), request.output_limit()
        # The prompt's token estimate is for TPM windows only (corrected to the actual tokens after).
        estimate = self._estimate(ctx, request) if self._gov.counts_tokens(ctx.principal, ctx.alias) else 0
        ctx.admission = adm = await self._gov.admit(
            ctx.request_id, ctx.principal, ctx.alias, worst, bound, estimate, out
        )
        ctx.headers.update(adm.headers)
        if isinstance(request, EmbeddingRequest):
            return request
        limit = adm.max_tokens
        if limit is not None:
            asked = "none" if out is None else str(out)
            ctx.headers["x-interlock-max-tokens"] = f"{limit}; requested={asked}"
        elif adm.granted_micros is not None and out is None:
            limit = self._gov.default_output_cap  # the reservation assumed this cap; enforce it upstream
        if limit is None:
            return request
        return request.model_copy(update={"max_tokens": limit, "max_completion_tokens": None})

    def _estimate(self, ctx: RequestContext, request: ModelRequest) -> int:
        """The prompt's tokens as the first deployment's tokenizer (or the heuristic) counts them."""
        if isinstance(request, EmbeddingRequest):
            texts = request.texts()
        else:
            texts = [m.text() for m in request.messages]
            texts.extend(c.function.name + c.function.arguments for m in request.messages for c in m.tool_calls or ())
            if request.tools:
                texts.append(orjson.dumps([t.model_dump() for t in request.tools]).decode())
        return self._counter.estimate(ctx.plan[0], "\n".join(texts))

    async def on_batch(self, ctx: RequestContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        """Cut a stream whose running cost passes its grant (for upstreams that ignore max_tokens)."""
        at = self._over_grant(ctx, ["".join(delta_text(c.delta) for c in chunk.choices) for chunk in batch])
        if at is not None:
            raise CutStream(_used_up(), keep=batch[:at])
        return batch

    async def on_relay(self, ctx: RequestContext, batch: list[RelayChunk]) -> list[RelayChunk]:
        """`on_batch` for relayed chunks (`streams.RelayHook`)."""
        at = self._over_grant(ctx, [chunk.text for chunk in batch])
        if at is not None:
            raise Cut(_used_up(), batch[:at])
        return batch

    def _over_grant(self, ctx: RequestContext, texts: list[str]) -> int | None:
        """The index of the chunk whose text takes the stream's estimated cost past its grant, if one does."""
        adm, dep = ctx.admission, ctx.deployment
        if adm is None or adm.granted_micros is None or dep is None:
            return None
        spent = int(ctx.notes.get(self.name, 0))  # type: ignore[call-overload]
        for i, text in enumerate(texts):
            if text:
                spent += dep.price.cost_micros(0, self._counter.estimate(dep, text))
            if spent > adm.granted_micros:
                return i
        ctx.notes[self.name] = spent
        return None

    def finish(self, ctx: RequestContext, outcome: Outcome) -> None:
        """Settle the reservation to the actual cost: at once in this process, else in the background."""
        adm = ctx.admission
        if adm is not None and not self._gov.settle_now(adm, outcome.cost_micros, outcome.usage.total_tokens):
            self._background.run(self._settle(ctx, outcome))

    async def _settle(self, ctx: RequestContext, outcome: Outcome) -> None:
        """Settle, retrying with backoff while the counters are unreachable (the reservation would expire
        on its own after its TTL, but the spend would be missing from the counters until re-seeded)."""
        assert ctx.admission is not None
        delay = SETTLE_FIRST_RETRY_S
        for attempt in range(1, SETTLE_TRIES + 1):
            try:
                await self._gov.settle(ctx.admission, outcome.cost_micros, outcome.usage.total_tokens)
                return
            except CountersUnavailable as exc:
                if attempt == SETTLE_TRIES:
                    log.error(
                        "settling the budget of %s failed %d times (%s); its reservation expires after its TTL "
                        "and its cost is in the ledger, from which a lost counter is re-seeded",
                        ctx.request_id, attempt, exc,
                    )  # fmt: skip
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception:
                log.exception("settling the budget of %s failed; its reservation expires on its own", ctx.request_id)
                return


class Ledger(Hook[RequestContext]):
    """The request's one ledger row (virtual keys and the admin; nothing for anonymous callers)."""

    name = "ledger"

    def __init__(
        self, record: Callable[[UsageRecord], None], reference: Price | None, state: Callable[[], str] = lambda: "ok"
    ) -> None:
        self._record = record
        self._reference = reference
        self._state = state

    async def before(self, ctx: RequestContext, request: ModelRequest) -> ModelRequest:
        """Refuse new work while the ledger can record none (the database refuses writes, the spool is full)."""
        if self._state() == "full":
            raise Unavailable(
                "the ledger cannot record requests right now (the database refuses writes and the local spool "
                "is full); retry shortly",
                code="ledger_unavailable",
                headers={"Retry-After": "5"},
            )
        return request

    def finish(self, ctx: RequestContext, outcome: Outcome) -> None:
        """Write the row."""
        p, usage, dep = ctx.principal, outcome.usage, ctx.deployment
        if p.key_id is None and not p.is_admin:
            return
        ref = self._reference
        price = None if outcome.cached or dep is None else dep.price
        self._record(
            UsageRecord(
                request_id=ctx.request_id,
                ts=ctx.ts,
                key_id=p.key_id,
                endpoint=ctx.endpoint,
                alias=ctx.alias[:200],  # the client's `model` value, unchecked when the row is a 400 or 404
                provider=outcome.provider,
                deployment=outcome.deployment,
                attempts=outcome.attempts or 1,
                upstream_model=dep.provider.upstream_model if price and dep else "",
                stream=ctx.stream,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                usage_source=outcome.usage_source,
                cost_micros=outcome.cost_micros,
                price_version=price.version if price else ("cache" if outcome.cached else ""),
                latency_ms=outcome.latency_ms,
                ttft_ms=outcome.ttft_ms,
                status=outcome.status,
                error=outcome.error.message[:500] if outcome.error else None,
                team_id=p.team_id,
                org_id=p.org_id,
                reference_cost_micros=ref.cost_micros(usage.prompt_tokens, usage.completion_tokens) if ref else 0,
                run_id=ctx.run_id,
                agent_id=p.agent_id or "",
                owner_id=p.owner_id or "",
                variant=ctx.variant,
                model_version=dep.provider.model_version if dep is not None and not outcome.cached else "",
            )
        )


def is_policy_denial(exc: GatewayError, attempted: bool) -> bool:
    """Whether an error is a policy decision to deny (audited), not a failure of the model or the input."""
    if exc.status in (401, 403) or isinstance(exc, Denied):
        return True
    return (
        exc.status == 429
        and not attempted
        and exc.code
        in (
            "budget_exceeded",
            "rate_limit_exceeded",
            "concurrency_limit_exceeded",
        )
    )


def denial_event(operation: str, exc: GatewayError, ctx: RequestContext | None) -> AuditEvent:
    """The audit entry of a refused request."""
    principal = ctx.principal if ctx else None
    return AuditEvent.denial(
        operation,
        actor_id=principal.key_id if principal else None,
        actor_name=principal.name if principal else "anonymous",
        reason=exc.message,
        target=ctx.alias if ctx else "",
        status=exc.status,
        code=exc.code or "",
    )


class DenialAudit(Hook[RequestContext]):
    """An audit entry for every request that policy refused (scope, residency, budgets, limits, hooks)."""

    name = "denial-audit"

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def finish(self, ctx: RequestContext, outcome: Outcome) -> None:
        """Record a denial."""
        if outcome.error is not None and is_policy_denial(outcome.error, outcome.attempted):
            self._audit.record(denial_event(ctx.operation, outcome.error, ctx))
