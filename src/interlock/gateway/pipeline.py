"""The request path after parsing: scope, residency, cache, budgets and rate limits, routing with
failover, the provider call, and settlement into the ledger (see settlement.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import orjson

from interlock.errors import (
    BadRequest,
    BudgetExceeded,
    Forbidden,
    GatewayError,
    NotFound,
    UpstreamError,
    UpstreamTimeout,
)
from interlock.governance.admission import Governance, prompt_token_bound
from interlock.types import Price
from interlock.routing.cache import ResponseCache, assemble, cache_key, replay_as_chunks
from interlock.routing.deployments import Deployment, ModelRoute
from interlock.routing.failover import Failover
from interlock.settings import RoutingSettings
from interlock.gateway.settlement import RequestContext, Settlement
from interlock.types import (
    Batch,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Delta,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)

T = TypeVar("T")
RESIDENT_TAGS = {"local", "sovereign"}
CLIENT_CLOSED = 499  # nginx's code for "client closed the connection"


class Gateway:
    """Runs requests through scope check, routing with failover, the provider call and settlement."""

    def __init__(
        self,
        routes: dict[str, ModelRoute],
        routing: RoutingSettings,
        settlement: Settlement,
        *,
        first_token_timeout: float = 60.0,
        cache: ResponseCache | None = None,
        governance: Governance | None = None,
    ) -> None:
        self.routes = routes
        self.failover = Failover(routes, routing)
        self.settlement = settlement
        self.cache = cache
        self.governance = governance
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

    async def _pick(self, ctx: RequestContext, route: ModelRoute, request: ChatRequest) -> ModelRoute:
        """For a router alias, the model the learned router picks for this prompt (else the route itself)."""
        if route.router is None or route.model.router is None:
            return route
        spec = route.model.router
        router = route.router
        threshold = spec.threshold
        if threshold is None and spec.strong_share is not None:
            threshold = router.threshold_for_share(spec.strong_share)
        threshold = router.threshold if threshold is None else threshold
        prompt = "\n".join(m.text() for m in request.messages if m.role == "user")[-4000:]
        choice, score = await asyncio.to_thread(router.decide, prompt, threshold)
        order = [choice] + [m for m in router.models if m != choice]
        why = (
            "predicted gain of the stronger model is above the threshold"
            if choice != router.models[0]
            else ("the cheapest model is predicted to be good enough")
        )
        for name in order:
            target = self.routes[spec.models.get(name, name)]
            if not ctx.restricted or any(RESIDENT_TAGS & set(d.model.tags) for d in target.deployments):
                if name != choice:
                    why = f"data residency: {choice} is not local or sovereign"
                ctx.headers["x-interlock-route"] = (
                    f"model={target.alias}; score={score:.4f}; threshold={threshold:.4f}; reason={why}"
                )
                return target
        return self.routes[spec.models.get(choice, choice)]  # candidates() will refuse it with a clear 403

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
            self.settlement.settle(
                ctx, hit.usage or Usage(), "cache", status=200, ttft=None, cached=True, stream=request.stream
            )
        return hit

    async def _admit(
        self,
        ctx: RequestContext,
        route: ModelRoute,
        plan: list[Deployment],
        texts: list[str],
        messages: int,
        out: int | None,
    ) -> int | None:
        """Rate limits and budget reservation; returns a lowered output limit when the budget requires one."""
        if self.governance is None or not self.governance.applies(ctx.principal, route.alias):
            return None
        worst = Price(
            max(d.price.input_per_mtok for d in plan), max(d.price.output_per_mtok for d in plan), "worst-case"
        )
        estimate, _ = self.settlement.count(plan[0], "\n".join(texts))
        ctx.admission = await self.governance.admit(
            ctx.request_id, ctx.principal, route.alias, worst, prompt_token_bound(texts, messages), estimate, out
        )
        ctx.headers.update(ctx.admission.headers)
        if ctx.admission.max_tokens is not None:
            return ctx.admission.max_tokens
        if ctx.admission.granted_micros is not None and out is None:
            return self.governance.default_output_cap  # the reservation assumed this cap; enforce it upstream
        return None

    async def _admit_chat(
        self, ctx: RequestContext, route: ModelRoute, plan: list[Deployment], request: ChatRequest
    ) -> ChatRequest:
        texts = [m.text() for m in request.messages]
        if request.tools:
            texts.append(orjson.dumps([t.model_dump() for t in request.tools]).decode())
        limit = await self._admit(ctx, route, plan, texts, len(request.messages), request.output_limit())
        if limit is None:
            return request
        return request.model_copy(update={"max_tokens": limit, "max_completion_tokens": None})

    async def _routed(
        self,
        ctx: RequestContext,
        route: ModelRoute,
        plan: list[Deployment],
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

        outcome = await self.failover.run(route, tracked, plan)
        return outcome.result

    # requests --------------------------------------------------------------------------------

    async def chat(self, ctx: RequestContext, request: ChatRequest) -> ChatResponse:
        """A complete chat answer, settled into the ledger."""
        route = await self._pick(ctx, self.resolve(ctx, request.model, "chat"), request)
        plan = self.candidates(ctx, route)  # refuses a restricted request before the cache is consulted
        key = self._cache_key(ctx, route, request)
        hit = await self._cached(ctx, request, key)
        if hit is not None:
            return hit
        request = await self._admit_chat(ctx, route, plan, request)
        response = await self._routed(ctx, route, plan, lambda dep: dep.provider.chat(request))
        assert ctx.deployment is not None
        usage, source = self.settlement.usage(ctx.deployment, request, response.usage, _response_text(response))
        response.usage = usage
        self.settlement.settle(ctx, usage, source, status=200, ttft=None)
        if key is not None and self.cache is not None and response.choices:
            await self.cache.put(key[0], response, key[1])
        return response

    async def _open_stream(
        self, dep: Deployment, request: ChatRequest
    ) -> tuple[AsyncIterator[list[ChatChunk]], list[ChatChunk]]:
        """Start a stream and wait for its first chunks; failures here may still be retried."""
        stream = dep.provider.stream_batches(request)
        try:
            async with asyncio.timeout(self._first_token_timeout):
                first = await anext(stream)
                while not first:
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

    async def stream(self, ctx: RequestContext, request: ChatRequest) -> AsyncIterator[list[ChatChunk]]:
        """Chunks as the provider makes them, in the batches that are ready together (never empty).

        Settles when the stream ends, fails or is abandoned.
        """
        route = await self._pick(ctx, self.resolve(ctx, request.model, "chat"), request)
        plan = self.candidates(ctx, route)
        key = self._cache_key(ctx, route, request)
        hit = await self._cached(ctx, request, key)
        if hit is not None:
            yield Batch.final(replay_as_chunks(hit))
            return
        request = await self._admit_chat(ctx, route, plan, request)
        adm = ctx.admission
        ceiling = adm.granted_micros if adm is not None else None
        spent_estimate = 0
        finish: str | None = None
        usage = Usage()
        ttft: float | None = None
        reported: Usage | None = None
        pieces: list[str] = []
        thoughts: list[str] = []  # reasoning text: billed like output when the upstream reports no usage
        status, error = 200, None
        dep: Deployment | None = None
        stream: AsyncIterator[list[ChatChunk]] | None = None
        opening: ChatChunk | None = None

        def observe(chunk: ChatChunk) -> None:
            nonlocal reported, finish, key
            if chunk.usage is not None:
                reported = chunk.usage
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                if choice.delta.model_extra:
                    thoughts.append(_reasoning(choice.delta.model_extra))
                for call in choice.delta.tool_calls or ():
                    key = None  # streamed tool calls are not cached
                    pieces.append((call.function or {}).get("arguments", ""))

        try:
            live, batch = await self._routed(ctx, route, plan, lambda d: self._open_stream(d, request))
            stream = live
            dep = ctx.deployment
            assert dep is not None
            dep.outstanding += 1
            ttft = (time.perf_counter() - ctx.started) * 1000
            opening = batch[0]
            while True:
                for i, chunk in enumerate(batch):
                    observe(chunk)
                    if ceiling is not None:
                        # Backstop for upstreams that ignore max_tokens: cut when the running cost passes the grant.
                        text = "".join(_delta_text(c.delta) for c in chunk.choices)
                        spent_estimate += dep.price.cost_micros(0, self.settlement.count(dep, text)[0]) if text else 0
                        if spent_estimate > ceiling:
                            if i:
                                yield batch[:i]
                            raise BudgetExceeded(
                                "the budget reserved for this request is used up; the answer is cut short"
                            )
                yield batch
                following = await anext(live, None)
                if following is None:
                    break
                batch = following
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
                usage, source = self.settlement.usage(dep, request, reported, "".join(thoughts) + "".join(pieces))
                self.settlement.settle(ctx, usage, source, status=status, ttft=ttft, error=error, stream=True)
            if stream is not None:
                await _close(stream)  # an abandoned or cut stream releases its upstream connection now
        if key is not None and self.cache is not None and finish is not None and status == 200:
            assert opening is not None
            await self.cache.put(key[0], assemble(opening, "".join(pieces), finish, usage), key[1])

    async def embed(self, ctx: RequestContext, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embeddings, settled into the ledger."""
        route = self.resolve(ctx, request.model, "embedding")
        plan = self.candidates(ctx, route)
        try:
            texts = request.texts()
        except ValueError as exc:
            raise BadRequest(str(exc), param="input") from None
        await self._admit(ctx, route, plan, texts, len(texts), 0)
        response = await self._routed(ctx, route, plan, lambda dep: dep.provider.embed(request))
        self.settlement.settle(ctx, response.usage, "provider", status=200, ttft=None)
        return response


def _reasoning(extra: dict[str, Any]) -> str:
    """The reasoning text an upstream sent alongside the answer (`reasoning_content`, DeepSeek and vLLM)."""
    text = extra.get("reasoning_content")
    return text if isinstance(text, str) else ""


def _delta_text(delta: Delta) -> str:
    """The generated text in a streamed delta, reasoning included."""
    return (delta.content or "") + (_reasoning(delta.model_extra) if delta.model_extra else "")


def _response_text(response: ChatResponse) -> str:
    """The generated text of an answer (reasoning and tool-call arguments included), for counting tokens."""
    parts: list[str] = []
    for choice in response.choices:
        if choice.message.model_extra:
            parts.append(_reasoning(choice.message.model_extra))
        parts.append(choice.message.content or "")
        parts.extend(c.function.arguments for c in choice.message.tool_calls or ())
    return "".join(parts)


async def _close(stream: AsyncIterator[list[ChatChunk]]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
