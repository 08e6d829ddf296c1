"""OpenTelemetry traces of one app: a span per model request, a child span per routing attempt.

The app owns its `TracerProvider` (the process-wide one is never set, so several apps, and the
tests, each keep their own). Spans follow the GenAI semantic conventions at the version pinned in
`observability.semconv`:

- the request: a SERVER span, started when the request arrives (`traced`, around the model
  endpoints' handlers) as a child of the caller's W3C `traceparent` when it sent one, renamed
  `{gen_ai.operation.name} {model}` once the model is known, and given the outcome (status, tokens,
  finish reasons, the deployment and provider that answered) by `TracingHook`;
- each routing attempt: a CLIENT span around the provider call (`TracedProvider`), whose context
  goes upstream in the HTTP request's `traceparent` (`trace_config`, an aiohttp hook).

Export is optional: `[tracing] otlp_endpoint` sends spans over OTLP/HTTP in batches, off the request
path, with `opentelemetry-exporter-otlp-proto-http` (not a dependency: installed on purpose).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from interlock import __version__
from interlock.observability import semconv as sc
from interlock.observability.context import ObservedContext
from interlock.plugins.hooks import Hook, ModelResponse, Outcome
from interlock.settings import ConfigError, TracingSettings
from interlock.types import ChatResponse

Handler = Callable[[Request], Awaitable[Response]]
K = TypeVar("K")
OTLP_PACKAGE = "opentelemetry-exporter-otlp-proto-http"
MAX_NAME_CHARS = 200


def otlp_exporter(endpoint: str) -> SpanExporter:
    """The OTLP/HTTP span exporter, or a config error saying which package to install."""
    try:
        module = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    except ImportError:
        raise ConfigError(
            f"[tracing] otlp_endpoint is set to {endpoint!r} but the OTLP exporter is not installed; "
            f"run `pip install {OTLP_PACKAGE}` (or remove otlp_endpoint)"
        ) from None
    exporter: SpanExporter = module.OTLPSpanExporter(endpoint=endpoint)
    return exporter


class Tracing:
    """The app's tracer provider, its propagator, and the pieces that put spans on the request path."""

    def __init__(self, settings: TracingSettings) -> None:
        resource = Resource.create({"service.name": settings.service_name, "service.version": __version__})
        self.provider = TracerProvider(resource=resource)
        if settings.otlp_endpoint:
            self.provider.add_span_processor(BatchSpanProcessor(otlp_exporter(settings.otlp_endpoint)))
        self.tracer = self.provider.get_tracer("interlock", __version__, schema_url=sc.SCHEMA_URL)
        self.propagator = TraceContextTextMapPropagator()
        self.hook = TracingHook()

    def trace_config(self) -> aiohttp.TraceConfig:
        """An aiohttp hook that adds the current span's `traceparent` to every upstream request."""
        config = aiohttp.TraceConfig()
        propagator = self.propagator

        async def on_request_start(
            session: aiohttp.ClientSession, _: Any, params: aiohttp.TraceRequestStartParams
        ) -> None:
            propagator.inject(params.headers)

        config.on_request_start.append(on_request_start)
        return config

    def traced(self, handlers: Mapping[tuple[str, str], Handler]) -> dict[tuple[str, str], Handler]:
        """Each (method, path) handler wrapped so that its request is a SERVER span."""
        return {key: self._traced(handler, key[1]) for key, handler in handlers.items()}

    def _traced(self, handler: Handler, route: str) -> Handler:
        tracer, propagator = self.tracer, self.propagator

        async def traced(request: Request) -> Response:
            parent = propagator.extract(request.headers)
            span = tracer.start_span(
                f"{request.method} {route}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes={sc.HTTP_METHOD: request.method, sc.HTTP_ROUTE: route},
            )
            try:
                response = await handler(request)
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.end()
                raise
            return _TracedResponse(response, span)

        traced.__name__ = traced.__qualname__ = getattr(handler, "__name__", "handler")
        return traced

    async def close(self) -> None:
        """Export what is pending and stop (off the event loop: an exporter may wait for its collector)."""
        await asyncio.to_thread(self.provider.shutdown)


class _TracedResponse(Response):
    """Runs `inner` with `span` current, records the HTTP status, and ends the span after the last byte."""

    def __init__(self, inner: Response, span: Span) -> None:
        # No super().__init__: the wrapped response renders everything.
        self.background = None
        self._inner, self._span = inner, span

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the wrapped response."""
        span = self._span

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute(sc.HTTP_STATUS, status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self._inner(scope, receive, sending)
        finally:
            otel_context.detach(token)
            span.end()


class TracingHook(Hook[ObservedContext]):
    """Names the request's span once the model is known and gives it the outcome."""

    name = "tracing"

    async def after(self, ctx: ObservedContext, response: ModelResponse) -> ModelResponse:
        """A complete answer's id and finish reasons."""
        span = trace.get_current_span()
        if span.is_recording() and isinstance(response, ChatResponse):
            span.set_attribute(sc.RESPONSE_ID, response.id)
            reasons = [c.finish_reason for c in response.choices if c.finish_reason]
            if reasons:
                span.set_attribute(sc.RESPONSE_FINISH_REASONS, reasons)
        return response

    def finish(self, ctx: ObservedContext, outcome: Outcome) -> None:
        """The outcome on the request's span (a no-op when the request is not traced or not sampled)."""
        span = trace.get_current_span()
        if not span.is_recording():
            return
        operation = sc.OPERATIONS.get(ctx.endpoint, ctx.endpoint)
        span.update_name(f"{operation} {ctx.alias}"[:MAX_NAME_CHARS] if ctx.alias else operation)
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: operation,
            sc.REQUEST_MODEL: ctx.alias[:MAX_NAME_CHARS],
            sc.REQUEST_ID: ctx.request_id,
            sc.ENDPOINT: ctx.endpoint,
            sc.STATUS: outcome.status,
            sc.ATTEMPTS: outcome.attempts,
            sc.USAGE_INPUT_TOKENS: outcome.usage.prompt_tokens,
            sc.USAGE_OUTPUT_TOKENS: outcome.usage.completion_tokens,
            sc.COST_USD: outcome.cost_micros / 1_000_000,
        }
        dep = ctx.deployment
        if dep is not None and outcome.deployment:
            attributes[sc.RESPONSE_MODEL] = dep.alias
            attributes[sc.DEPLOYMENT] = dep.name
            attributes[sc.PROVIDER_NAME] = sc.provider_name(dep.provider.kind, dep.model.base_url)
        if ctx.cache:
            attributes[sc.CACHE] = ctx.cache
        tally = ctx.tally
        if tally is not None and tally.finish:
            attributes[sc.RESPONSE_FINISH_REASONS] = [tally.finish]
        if outcome.error is not None:
            attributes[sc.ERROR_TYPE] = outcome.error.code or type(outcome.error).__name__
            if outcome.status >= 500:
                span.set_status(Status(StatusCode.ERROR, outcome.error.message[:200]))
        span.set_attributes(attributes)
