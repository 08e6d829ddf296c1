"""The request path after parsing: scope check, route, call the provider, settle into the ledger.

Each authenticated request writes exactly one ledger row, whatever happens: success, a client
mistake, an upstream failure, a stream cut short or a client that disconnects.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from interlock.errors import Forbidden, GatewayError, NotFound, UpstreamError, UpstreamTimeout
from interlock.policy.keys import Principal
from interlock.routing.cache import ResponseCache, assemble, cache_key, replay_as_chunks
from interlock.routing.deployments import Deployment, ModelRoute
from interlock.routing.failover import Failover
from interlock.settings import RoutingSettings
from interlock.store.records import UsageRecord
from interlock.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    Usage,
)

T = TypeVar("T")
RESIDENT_TAGS = {"local", "sovereign"}
CLIENT_CLOSED = 499  # nginx's code for "client closed the connection"


@dataclass(slots=True)
class RequestContext:
    """Per-request facts every stage may read."""

    principal: Principal
    endpoint: str
    request_id: str = field(default_factory=lambda: "req_" + uuid.uuid4().hex)
    ts: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    alias: str = ""
    deployment: Deployment | None = None
    attempts: int = 0
    restricted: bool = False  # data residency: only local/sovereign deployments
    cache: str = ""  # "hit" or "miss" when the response cache applies
    recorded: bool = False


class Gateway:
    """Runs requests through scope check, routing with failover, the provider call and settlement."""

    def __init__(
        self,
        routes: dict[str, ModelRoute],
        routing: RoutingSettings,
        record_usage: Callable[[UsageRecord], None],
        fallback_counter: tuple[str, Callable[[str], int | None]] | None = None,
        first_token_timeout: float = 60.0,
        cache: ResponseCache | None = None,
    ) -> None:
        self.routes = routes
        self.cache = cache
        self.failover = Failover(routes, routing)
        self._record = record_usage
        self._fallback = fallback_counter
        self._first_token_timeout = first_token_timeout

    # routing ---------------------------------------------------------------------------------

    def resolve(self, ctx: RequestContext, alias: str, mode: str) -> ModelRoute:
        """The route for `alias`, after checking that it exists, fits the endpoint, and is allowed."""
        ctx.alias = alias
        route = self.routes.get(alias)
        if route is None:
            known = ", ".join(sorted(a for a, r in self.routes.items() if r.model.mode == mode))
            raise NotFound(f"model '{alias}' does not exist; available {mode} models: {known or 'none'}", param="model")
        if route.model.mode != mode:
            raise NotFound(f"model '{alias}' is an {route.model.mode} model, not a {mode} model", param="model")
        if not ctx.principal.may_use(alias, route.tags):
            raise Forbidden(
                f"key '{ctx.principal.name}' may not use model '{alias}'; "
                f"it may use: {', '.join(ctx.principal.models)}",
                code="model_not_allowed",
            )
        return route

    def candidates(self, ctx: RequestContext, route: ModelRoute) -> list[Deployment]:
        """Deployments this request may go to, in order; a restricted request only gets local/sovereign ones."""
        plan = self.failover.candidates(route)
        if not ctx.restricted:
            return plan
        allowed = [d for d in plan if RESIDENT_TAGS & set(d.model.tags)]
        if not allowed:
            raise Forbidden(
                f"this request is restricted to local or sovereign deployments (data residency), and model "
                f"'{route.alias}' has none; use a model tagged 'local' or 'sovereign'",
                code="residency_restricted",
            )
        return allowed

    def _cache_key(self, ctx: RequestContext, route: ModelRoute, request: ChatRequest) -> tuple[str, int] | None:
        ttl = max(route.model.cache_ttl_s, ctx.principal.cache_ttl_s)
        if self.cache is None or ttl <= 0:
            return None
        return cache_key(ctx.principal.key_id, request), ttl

    async def _cached(
        self, ctx: RequestContext, request: ChatRequest, key: tuple[str, int] | None
    ) -> ChatResponse | None:
        if key is None or self.cache is None:
            return None
        hit = await self.cache.get(key[0])
        ctx.cache = "miss" if hit is None else "hit"
        if hit is not None:
            self.settle(ctx, hit.usage or Usage(), "cache", status=200, ttft=None, cached=True, stream=request.stream)
        return hit

    async def _routed(
        self,
        ctx: RequestContext,
        route: ModelRoute,
        call: Callable[[Deployment], Awaitable[T]],
    ) -> T:
        async def tracked(dep: Deployment) -> T:
            ctx.attempts += 1
            ctx.deployment = dep
            dep.outstanding += 1
            started = time.perf_counter()
            try:
                result = await call(dep)
            finally:
                dep.outstanding -= 1
            dep.observe_latency((time.perf_counter() - started) * 1000)
            return result

        outcome = await self.failover.run(route, tracked, self.candidates(ctx, route))
        return outcome.result

    # requests --------------------------------------------------------------------------------

    async def chat(self, ctx: RequestContext, request: ChatRequest) -> ChatResponse:
        """A complete chat answer, settled into the ledger."""
        route = self.resolve(ctx, request.model, "chat")
        self.candidates(ctx, route)  # refuse a restricted request before looking in the cache
        key = self._cache_key(ctx, route, request)
        hit = await self._cached(ctx, request, key)
        if hit is not None:
            return hit
        response = await self._routed(ctx, route, lambda dep: dep.provider.chat(request))
        assert ctx.deployment is not None
        usage, source = self._usage(ctx.deployment, request, response.usage, _response_text(response))
        response.usage = usage
        self.settle(ctx, usage, source, status=200, ttft=None)
        if key is not None and self.cache is not None and response.choices:
            await self.cache.put(key[0], response, key[1])
        return response

    async def _open_stream(self, dep: Deployment, request: ChatRequest) -> tuple[AsyncIterator[ChatChunk], ChatChunk]:
        """Start a stream and wait for its first chunk; failures here may still be retried."""
        stream = dep.provider.stream(request)
        try:
            async with asyncio.timeout(self._first_token_timeout):
                first = await anext(stream)
        except StopAsyncIteration:
            raise UpstreamError(
                "the upstream ended the stream without sending anything", code="upstream_truncated"
            ) from None
        except TimeoutError:
            await _close(stream)
            raise UpstreamTimeout(f"no first token within {self._first_token_timeout:g} s") from None
        except BaseException:
            await _close(stream)
            raise
        return stream, first

    async def stream(self, ctx: RequestContext, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Chunks as the provider makes them; settles when the stream ends, fails or is abandoned."""
        route = self.resolve(ctx, request.model, "chat")
        self.candidates(ctx, route)
        key = self._cache_key(ctx, route, request)
        hit = await self._cached(ctx, request, key)
        if hit is not None:
            for cached in replay_as_chunks(hit):
                yield cached
            return
        finish: FinishReason | None = None
        usage = Usage()
        ttft: float | None = None
        reported: Usage | None = None
        pieces: list[str] = []
        status, error = 200, None
        dep: Deployment | None = None

        def observe(chunk: ChatChunk) -> None:
            nonlocal reported, finish, key
            if chunk.usage is not None:
                reported = chunk.usage
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                for call in choice.delta.tool_calls or ():
                    key = None  # streamed tool calls are not cached
                    pieces.append((call.function or {}).get("arguments", ""))

        try:
            stream, first = await self._routed(ctx, route, lambda d: self._open_stream(d, request))
            dep = ctx.deployment
            assert dep is not None
            dep.outstanding += 1
            ttft = (time.perf_counter() - ctx.started) * 1000
            observe(first)
            yield first
            async for chunk in stream:
                observe(chunk)
                yield chunk
        except GatewayError as exc:
            status, error = exc.status, exc.message
            raise
        except (asyncio.CancelledError, GeneratorExit):
            status, error = CLIENT_CLOSED, "client disconnected"
            raise
        except Exception as exc:
            status, error = 500, f"internal error: {type(exc).__name__}"
            raise
        finally:
            if dep is not None:
                dep.outstanding -= 1
                usage, source = self._usage(dep, request, reported, "".join(pieces))
                self.settle(ctx, usage, source, status=status, ttft=ttft, error=error, stream=True)
        if key is not None and self.cache is not None and finish is not None and status == 200:
            await self.cache.put(key[0], assemble(first, "".join(pieces), finish, usage), key[1])

    async def embed(self, ctx: RequestContext, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embeddings, settled into the ledger."""
        route = self.resolve(ctx, request.model, "embedding")
        response = await self._routed(ctx, route, lambda dep: dep.provider.embed(request))
        self.settle(ctx, response.usage, "provider", status=200, ttft=None)
        return response

    # settlement ------------------------------------------------------------------------------

    def _count(self, dep: Deployment, text: str) -> tuple[int, str]:
        n = dep.provider.count_tokens(text)
        if n is not None:
            return n, f"tokenizer:{dep.alias}"
        if self._fallback is not None:
            n = self._fallback[1](text)
            if n is not None:
                return n, f"tokenizer:{self._fallback[0]}"
        return (len(text) + 3) // 4, "estimate:chars/4"

    def _usage(
        self, dep: Deployment, request: ChatRequest, reported: Usage | None, completion: str
    ) -> tuple[Usage, str]:
        if reported is not None and (reported.prompt_tokens or reported.completion_tokens):
            return reported, "provider"
        prompt_text = "\n".join(m.text() for m in request.messages)
        prompt, source = self._count(dep, prompt_text)
        done, _ = self._count(dep, completion) if completion else (0, source)
        return Usage.of(prompt, done), source

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
                cost_micros=price.cost_micros(usage.prompt_tokens, usage.completion_tokens) if price else 0,
                price_version=price.version if price else ("cache" if cached else ""),
                latency_ms=(time.perf_counter() - ctx.started) * 1000,
                ttft_ms=ttft,
                status=status,
                error=error,
            )
        )

    def settle_error(self, ctx: RequestContext, exc: GatewayError) -> None:
        """Record a request that failed before any tokens were produced."""
        self.settle(ctx, Usage(), "none", status=exc.status, ttft=None, error=exc.message[:500])


def _response_text(response: ChatResponse) -> str:
    parts: list[str] = []
    for choice in response.choices:
        parts.append(choice.message.content or "")
        parts.extend(c.function.arguments for c in choice.message.tool_calls or ())
    return "".join(parts)


async def _close(stream: AsyncIterator[ChatChunk]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
