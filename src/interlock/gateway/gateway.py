"""`Gateway.handle`: one request from its parsing to its settlement, in one `try/finally`.

The order, for every model endpoint:

1. parse the body into a typed request (a 400 here is still settled: one ledger row);
2. `before` hooks of phase "input" (content checks: they may rewrite or restrict the request);
3. the route: the alias must exist, fit the endpoint and be allowed to the key; a router alias
   picks its target here (the router alias is the unit of permission: see the README);
4. `before` hooks of phase "policy": residency, the plugins' policy hooks, the cache, governance;
5. the call, with failover before the first byte (`routing.Failover`);
6. `on_batch` hooks on each streamed batch, or `after` hooks on a complete answer;
7. the answer goes to the `Sink` (the HTTP layer's writer);
8. `finally`: the outcome (usage, cost, status) is counted once and every `finish` hook sees it:
   the ledger row, the budget settlement, the audit of a denial, the cache, the plugins.

Handlers and responses never settle; the gateway does, once, whatever failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from interlock.errors import Forbidden, GatewayError, NotFound
from interlock.gateway.context import RequestContext, StreamTally
from interlock.gateway.settlement import CLIENT_CLOSED, TokenCounter, outcome
from interlock.gateway.shadows import SHADOW, Shadows
from interlock.gateway.stages import is_resident
from interlock.gateway.streams import (
    RelayHook,
    RelayStream,
    Stream,
    StreamHooks,
    chat_batches,
    close_stream,
    nothing,
    open_stream,
    relay_batches,
)
from interlock.plugins.hooks import Answered, Hook, ModelRequest, ModelResponse, Outcome
from interlock.routing.cache import replay_as_chunks
from interlock.routing.deployments import Deployment, ModelRoute
from interlock.routing.failover import Failover
from interlock.settings import RoutingSettings
from interlock.translate.openai_relay import RelayChunk
from interlock.types import Batch, ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, Usage
from interlock.types.tenancy import CACHE_PARTITION, CacheScope, partition_of

log = logging.getLogger(__name__)

T = TypeVar("T")


SHOWN_NAME_CHARS = 200


def _shown(name: str) -> str:
    """A client's model name as an error message echoes it: at most `SHOWN_NAME_CHARS` characters."""
    return name if len(name) <= SHOWN_NAME_CHARS else name[:SHOWN_NAME_CHARS] + "…"


class Sink(Protocol):
    """Where the answer goes: the HTTP layer's writer for one request, in its wire format."""

    async def answer(self, ctx: RequestContext, response: ModelResponse) -> None:
        """Send a complete answer."""
        ...

    async def stream(self, ctx: RequestContext, first: list[ChatChunk], rest: Stream) -> None:
        """Send a stream: `first` (already produced, so a failure before it still got a real status), then `rest`."""
        ...

    @property
    def relays(self) -> bool:
        """Whether this sink takes an OpenAI upstream's chunks as they came (`relay`): an OpenAI chat client."""
        ...

    async def relay(self, ctx: RequestContext, first: list[RelayChunk], rest: RelayStream) -> None:
        """Send a relayed stream, as `stream` does."""
        ...

    async def fail(self, ctx: RequestContext, exc: GatewayError) -> None:
        """Send the error: its JSON and status, or an error event once a stream has started."""
        ...


class _Hooks:
    """The hooks that implement each method, in order, computed once per endpoint."""

    def __init__(
        self, first: Sequence[Hook[RequestContext]], rest: Sequence[Hook[RequestContext]], counter: TokenCounter
    ) -> None:
        every = [*first, *rest]
        self.before_input = [h for h in first if h.overrides("before")]
        self.before = [h for h in rest if h.overrides("before")]
        self.on_batch = [h for h in every if h.overrides("on_batch")]
        relay = [h for h in self.on_batch if isinstance(h, RelayHook)]  # they take relayed chunks too
        self.watching = [h for h in self.on_batch if not isinstance(h, RelayHook)]
        self.stream = StreamHooks(self.on_batch, relay, counter)
        self.after = [h for h in every if h.overrides("after")]
        self.finish = [h for h in every if h.overrides("finish")]


class Gateway:
    """Runs every model request through its hooks, routing with failover, the provider, and settlement."""

    def __init__(
        self,
        routes: dict[str, ModelRoute],
        routing: RoutingSettings,
        counter: TokenCounter,
        *,
        input_hooks: Sequence[Hook[RequestContext]] = (),
        policy_hooks: Sequence[Hook[RequestContext]] = (),
        output_hooks: Sequence[Hook[RequestContext]] = (),
        shadow_hooks: Sequence[Hook[RequestContext]] = (),
        first_token_timeout: float = 60.0,
        max_shadows: int = 16,
        cache_scope: CacheScope = "key",
    ) -> None:
        self.routes = routes
        self.cache_scope: CacheScope = cache_scope  # whose requests share prompt KV cells (`types.tenancy`)
        self.failover = Failover(routes, routing)
        self.counter = counter
        self._first_token_timeout = first_token_timeout
        self._input, self._policy, self._output = list(input_hooks), list(policy_hooks), list(output_hooks)
        # Shadow answers run only the hooks that account for them (residency, budget, ledger, capture).
        self._by_endpoint: dict[str, _Hooks] = {SHADOW: _Hooks([], shadow_hooks, counter)}
        self.shadows = Shadows(self.handle, max_shadows)

    def hooks(self, endpoint: str) -> _Hooks:
        """The hook lists of an endpoint, built on first use and kept."""
        found = self._by_endpoint.get(endpoint)
        if found is None:
            first = [h for h in self._input if h.applies_to(endpoint)]
            rest = [h for h in [*self._policy, *self._output] if h.applies_to(endpoint)]
            found = self._by_endpoint[endpoint] = _Hooks(first, rest, self.counter)
        return found

    # routing ---------------------------------------------------------------------------------

    def resolve(self, ctx: RequestContext, alias: str, mode: str) -> ModelRoute:
        """The route for `alias`, after checking that it exists, fits the endpoint, and is allowed."""
        ctx.alias = alias
        route = self.routes.get(alias)
        if route is None:
            # only the aliases this key may call: a 404 must not reveal the others
            known = ", ".join(
                sorted(a for a, r in self.routes.items() if r.model.mode == mode and ctx.principal.may_use(a, r.tags))
            )
            raise NotFound(
                f"model '{_shown(alias)}' does not exist; available {mode} models: {known or 'none'}", param="model"
            )
        if route.model.mode != mode:
            raise NotFound(f"model '{alias}' is an {route.model.mode} model, not a {mode} model", param="model")
        if not ctx.principal.may_use(alias, route.tags):
            raise Forbidden(
                f"key '{ctx.principal.name}' may not use model '{alias}'; "
                f"it may use: {', '.join(ctx.principal.models)}",
                code="model_not_allowed",
            )
        return route

    async def _route(self, ctx: RequestContext, request: ModelRequest) -> None:
        """Set the route, the plan of deployments and what a router alias may reach."""
        mode = "embedding" if isinstance(request, EmbeddingRequest) else "chat"
        # A shadow answer goes to its variant's alias, allowed through the alias it shadows.
        route = self.routes[request.model] if ctx.shadow_of else self.resolve(ctx, request.model, mode)
        if route.variants is not None:
            route = self._variant(ctx, route)
        if isinstance(request, ChatRequest) and route.router is not None and route.model.router is not None:
            targets = [self.routes[route.model.router.models.get(m, m)] for m in route.router.models]
            ctx.reach = [d for t in targets for d in self.failover.candidates(t)]
            route = await self._pick(ctx, route, request)
        ctx.route = route
        ctx.plan = self.failover.candidates(route)

    def _variant(self, ctx: RequestContext, route: ModelRoute) -> ModelRoute:
        """The variant that answers (sticky per run, else per key; a resident one for a restricted request)."""
        assert route.variants is not None
        chosen = route.variants.choose(ctx.run_id or ctx.principal.key_id)
        if ctx.restricted and not self._resident(chosen.model):
            weights = route.variants.weights()
            resident = [v for v in route.variants.variants if weights.get(v.name, 0) > 0 and self._resident(v.model)]
            chosen = resident[0] if resident else chosen  # none: residency refuses it with a clear 403
        ctx.variant = chosen.name
        ctx.headers["x-interlock-variant"] = chosen.name
        if not ctx.shadow_of:
            ctx.shadows = route.variants.shadows(ctx.request_id)
        return self.routes[chosen.model]

    def _resident(self, alias: str) -> bool:
        return any(is_resident(d.model.tags) for d in self.routes[alias].deployments)

    async def _pick(self, ctx: RequestContext, route: ModelRoute, request: ChatRequest) -> ModelRoute:
        """The target the learned router picks for this prompt (a resident one for a restricted request)."""
        assert route.router is not None and route.model.router is not None
        spec, router = route.model.router, route.router
        threshold = spec.threshold
        if threshold is None and spec.strong_share is not None:
            threshold = router.threshold_for_share(spec.strong_share)
        threshold = router.threshold if threshold is None else threshold
        conversation = [(m.role, m.text()) for m in request.messages]  # bounded by the router (prompt.py)
        choice, score = await asyncio.to_thread(router.decide, conversation, threshold)
        order = [choice] + [m for m in router.models if m != choice]
        why = (
            "predicted gain of the stronger model is above the threshold"
            if choice != router.models[0]
            else "the cheapest model is predicted to be good enough"
        )
        for name in order:
            target = self.routes[spec.models.get(name, name)]
            if not ctx.restricted or any(is_resident(d.model.tags) for d in target.deployments):
                if name != choice:
                    why = f"data residency: {choice} is not local or sovereign"
                ctx.headers["x-interlock-route"] = (
                    f"model={target.alias}; score={score:.4f}; threshold={threshold:.4f}; reason={why}"
                )
                return target
        return self.routes[spec.models.get(choice, choice)]  # residency will refuse it with a clear 403

    # the request -----------------------------------------------------------------------------

    async def handle(self, ctx: RequestContext, parse: Callable[[], Awaitable[ModelRequest]], sink: Sink) -> None:
        """Serve one request into `sink`, and settle it exactly once however it ends; the providers it calls
        see its caller's cache partition (`types.tenancy`)."""
        p = ctx.principal
        partition = CACHE_PARTITION.set(partition_of(self.cache_scope, p.key_id, p.team_id, p.org_id, p.name))
        usage: Usage | None = None
        source, status, error, cached = "none", 200, None, False
        request: ModelRequest | None = None
        live: AsyncIterator[Any] | None = None  # an upstream stream, of chat chunks or relayed ones
        batches: AsyncGenerator[Any, None] | None = None
        hooks = self.hooks(ctx.endpoint)
        try:
            request = await parse()
            ctx.stream = isinstance(request, ChatRequest) and request.stream
            try:
                for hook in hooks.before_input:
                    request = await hook.before(ctx, request)
                await self._route(ctx, request)
                for hook in hooks.before:
                    request = await hook.before(ctx, request)
            except Answered as answered:
                usage, source = answered.response.usage or Usage(), answered.source
                cached = answered.source == "cache"
                await self._answer_now(ctx, answered.response, sink)
                return
            if isinstance(request, EmbeddingRequest):
                embedded = request
                vectors = await self._call(ctx, lambda dep: dep.provider.embed(embedded))
                usage, source = vectors.usage, "provider"
                await self._deliver(ctx, vectors, hooks, sink)
            elif not request.stream:
                chat = request
                answer = await self._call(ctx, lambda dep: dep.provider.chat(chat))
                usage, source = self._chat_usage(ctx, chat, answer)
                answer.usage = usage
                await self._deliver(ctx, answer, hooks, sink)
            elif self._relayable(ctx, request, hooks, sink):
                chat, wait = request, self._first_token_timeout
                relayed, head = await self._call(
                    ctx, lambda d: open_stream(d.provider.relay_batches(chat), wait), hold=True
                )
                live = relayed
                self._streaming(ctx)
                relaying = relay_batches(ctx, chat, head, relayed, hooks.stream)
                batches = relaying
                await sink.relay(ctx, await anext(relaying), relaying)
            else:
                chat, wait = request, self._first_token_timeout
                opened, first = await self._call(
                    ctx, lambda d: open_stream(d.provider.stream_batches(chat), wait), hold=True
                )
                live = opened
                self._streaming(ctx)
                streaming = chat_batches(ctx, chat, first, opened, hooks.stream)
                batches = streaming
                await sink.stream(ctx, await anext(streaming), streaming)
        except GatewayError as exc:
            status, error = exc.status, exc
            await sink.fail(ctx, exc)
        except (asyncio.CancelledError, OSError):
            status, error = CLIENT_CLOSED, GatewayError("client disconnected")
            raise
        except Exception as exc:
            log.exception("internal error on %s %s", ctx.operation, ctx.request_id)
            status, error = 500, GatewayError(f"internal error: {type(exc).__name__}")
            await sink.fail(ctx, GatewayError("internal error; the details are in the server log"))
        finally:
            CACHE_PARTITION.reset(partition)  # no provider is called for this request from here on
            dep = ctx.deployment
            if (
                isinstance(request, ChatRequest)
                and dep is not None
                and (ctx.tally is not None or status == CLIENT_CLOSED)
            ):
                # A stream (however it ended), or an answer the client abandoned: count what was sent and made.
                tally = ctx.tally or StreamTally()
                usage, source = self.counter.usage(dep, request, tally.reported, tally.generated())
            result = outcome(ctx, usage or Usage(), source, status=status, error=error, cached=cached)
            self._finish(ctx, hooks, result)
            if ctx.shadows and status == 200 and isinstance(request, ChatRequest):
                self.shadows.spawn(ctx, request)
            if live is not None:
                if dep is not None:  # always, once a stream opened: failover set it
                    self.failover.release(dep)
                if batches is not None:
                    await batches.aclose()
                await close_stream(live)  # an abandoned or cut stream releases its upstream connection now

    async def close(self) -> None:
        """Stop the shadow answers still running (each is settled as its task ends)."""
        await self.shadows.close()

    def _chat_usage(self, ctx: RequestContext, request: ChatRequest, response: ChatResponse) -> tuple[Usage, str]:
        assert ctx.deployment is not None
        return self.counter.answer_usage(ctx.deployment, request, response)

    async def _answer_now(self, ctx: RequestContext, response: ModelResponse, sink: Sink) -> None:
        """Send an answer that a hook gave instead of a model (a cache hit)."""
        if ctx.stream and isinstance(response, ChatResponse):
            await sink.stream(ctx, Batch.final(replay_as_chunks(response)), nothing())
        else:
            await sink.answer(ctx, response)

    async def _deliver(self, ctx: RequestContext, response: ModelResponse, hooks: _Hooks, sink: Sink) -> None:
        for hook in hooks.after:
            response = await hook.after(ctx, response)
        await sink.answer(ctx, response)

    def _finish(self, ctx: RequestContext, hooks: _Hooks, result: Outcome) -> None:
        for hook in hooks.finish:
            try:
                hook.finish(ctx, result)
            except Exception:
                log.exception("hook %r failed to finish request %s", hook.name, ctx.request_id)

    async def _call(self, ctx: RequestContext, call: Callable[[Deployment], Awaitable[T]], *, hold: bool = False) -> T:
        """The call on the plan's deployments, with failover; the context records where it went."""
        assert ctx.route is not None

        def attempt(dep: Deployment) -> None:
            ctx.attempts += 1
            ctx.deployment = dep

        result = await self.failover.run(ctx.route, call, ctx.plan, on_attempt=attempt, hold=hold)
        ctx.deployment, ctx.attempts = result.deployment, result.attempts
        return result.result

    def _streaming(self, ctx: RequestContext) -> None:
        """The first batch has come: the time to it, and the tally of what the stream produces."""
        ctx.ttft_ms = (time.perf_counter() - ctx.started) * 1000
        ctx.tally = StreamTally()

    def _relayable(self, ctx: RequestContext, request: ChatRequest, hooks: _Hooks, sink: Sink) -> bool:
        """Whether this stream goes out as the upstream's own chunks (`streams.relay_batches`).

        Only to a sink that takes them (an OpenAI chat client), only when every deployment the call may
        reach relays this request (an OpenAI-compatible upstream, not wrapped by tracing), and only when
        no `on_batch` hook has to see the chunks: each one either takes relayed chunks (`RelayHook`) or
        says, with `watches_stream(ctx)` returning False, that it has nothing to do on this stream (it is
        then not called for it). A hook without `watches_stream` is taken to watch every stream.
        """
        if not sink.relays or not all(d.provider.relays(request) for d in ctx.plan):
            return False
        for hook in hooks.watching:
            watches = getattr(hook, "watches_stream", None)
            if watches is None or watches(ctx):
                return False
        return True
