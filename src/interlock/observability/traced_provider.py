"""A provider wrapped so that each call to it is a span: one per routing attempt, child of the request's span.

The span is CLIENT kind for a remote model and INTERNAL for the embedded one (the GenAI conventions
allow INTERNAL for a model run in-process). While the wrapped call runs its span is the current one,
so the upstream HTTP request carries its `traceparent` (`Tracing.trace_config`). A stream's span
lasts until the stream ends or is closed, and is current only while the wrapped stream is being
read, never between batches, so nothing else in the request picks it up as a parent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from interlock.errors import GatewayError
from interlock.observability import semconv as sc
from interlock.providers.base import Provider
from interlock.translate.openai_relay import RelayChunk
from interlock.types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage

T = TypeVar("T", ChatChunk, RelayChunk)


class TracedProvider(Provider):
    """Delegates everything to `inner`; `chat`, `stream_batches`, `relay_batches` and `embed` are traced."""

    def __init__(self, inner: Provider, tracer: Tracer) -> None:
        super().__init__(inner.alias, inner.model)
        self.inner = inner
        self.kind = inner.kind
        self.upstream_model = inner.upstream_model
        self._tracer = tracer
        self._span_kind = SpanKind.INTERNAL if inner.kind == "local" else SpanKind.CLIENT
        self._provider_name = sc.provider_name(inner.kind, inner.model.base_url)

    def __getattr__(self, name: str) -> Any:
        """Anything else the provider offers (`stats` for /readyz and the engine metrics)."""
        if name == "inner":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def start(self) -> None:
        """Start the wrapped provider."""
        await self.inner.start()

    async def close(self) -> None:
        """Close the wrapped provider."""
        await self.inner.close()

    def readiness(self) -> tuple[bool, str]:
        """The wrapped provider's readiness."""
        return self.inner.readiness()

    def count_tokens(self, text: str) -> int | None:
        """The wrapped provider's tokenizer."""
        return self.inner.count_tokens(text)

    def count_prompt(self, request: ChatRequest) -> int | None:
        """The wrapped provider's prompt count."""
        return self.inner.count_prompt(request)

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Untraced: the gateway reads `stream_batches`."""
        return self.inner.stream(request)

    def _start(self, operation: str, request: ChatRequest | EmbeddingRequest) -> Span:
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: operation,
            sc.PROVIDER_NAME: self._provider_name,
            sc.REQUEST_MODEL: self.upstream_model,
            sc.DEPLOYMENT: self.alias,
        }
        if isinstance(request, ChatRequest):
            limit = request.output_limit()
            if limit is not None:
                attributes[sc.REQUEST_MAX_TOKENS] = limit
            if request.temperature is not None:
                attributes[sc.REQUEST_TEMPERATURE] = request.temperature
        return self._tracer.start_span(
            f"{operation} {self.upstream_model}", kind=self._span_kind, attributes=attributes
        )

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """One traced answer."""
        span = self._start("chat", request)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            response = await self.inner.chat(request)
            _answered(
                span,
                self.upstream_model,
                response.usage,
                [c.finish_reason for c in response.choices if c.finish_reason],
            )
            return response
        except Exception as exc:
            _failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    def stream_batches(self, request: ChatRequest) -> AsyncIterator[list[ChatChunk]]:
        """A traced stream: the span ends with the stream."""
        return self._traced(request, self.inner.stream_batches(request), _read_chunk)

    def relays(self, request: ChatRequest) -> bool:
        """Whether the wrapped provider relays this request's stream."""
        return self.inner.relays(request)

    def relay_batches(self, request: ChatRequest) -> AsyncIterator[list[RelayChunk]]:
        """A traced relayed stream, with the same span as `stream_batches`."""
        return self._traced(request, self.inner.relay_batches(request), _read_relay_chunk)

    async def _traced(
        self, request: ChatRequest, inner: AsyncIterator[list[T]], read: Callable[[T], tuple[Usage | None, list[str]]]
    ) -> AsyncIterator[list[T]]:
        span = self._start("chat", request)
        current = trace.set_span_in_context(span)
        usage: Usage | None = None
        reasons: list[str] = []
        try:
            while True:
                token = otel_context.attach(current)
                try:
                    batch = await anext(inner)
                except StopAsyncIteration:
                    break
                finally:
                    otel_context.detach(token)
                for chunk in batch:
                    chunk_usage, chunk_reasons = read(chunk)
                    usage = chunk_usage or usage
                    reasons.extend(chunk_reasons)
                yield batch
        except Exception as exc:
            _failed(span, exc)
            raise
        finally:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()
            if span.is_recording():
                _set_usage(span, usage)
                if reasons:
                    span.set_attribute(sc.RESPONSE_FINISH_REASONS, reasons)
                span.set_attribute(sc.RESPONSE_MODEL, self.upstream_model)
            span.end()

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Traced embeddings."""
        span = self._start("embeddings", request)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            response = await self.inner.embed(request)
            _answered(span, self.upstream_model, response.usage, [])
            return response
        except Exception as exc:
            _failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()


def _read_chunk(chunk: ChatChunk) -> tuple[Usage | None, list[str]]:
    return chunk.usage, [c.finish_reason for c in chunk.choices if c.finish_reason]


def _read_relay_chunk(chunk: RelayChunk) -> tuple[Usage | None, list[str]]:
    return chunk.usage, [chunk.finish] if chunk.finish else []


def _set_usage(span: Span, usage: Usage | None) -> None:
    if usage is not None:
        span.set_attribute(sc.USAGE_INPUT_TOKENS, usage.prompt_tokens)
        span.set_attribute(sc.USAGE_OUTPUT_TOKENS, usage.completion_tokens)


def _answered(span: Span, model: str, usage: Usage | None, reasons: list[str]) -> None:
    if not span.is_recording():
        return
    span.set_attribute(sc.RESPONSE_MODEL, model)
    _set_usage(span, usage)
    if reasons:
        span.set_attribute(sc.RESPONSE_FINISH_REASONS, reasons)


def _failed(span: Span, exc: Exception) -> None:
    """Mark the span failed, with the error's code as `error.type`."""
    kind = exc.code if isinstance(exc, GatewayError) and exc.code else type(exc).__name__
    span.set_attribute(sc.ERROR_TYPE, kind)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
