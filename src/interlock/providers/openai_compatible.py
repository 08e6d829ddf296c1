"""Any OpenAI-compatible upstream: vLLM, SGLang, llama.cpp server, Ollama, OpenRouter, DeepSeek, OpenAI.

With `responses_api = "native"` a request that came to `/v1/responses` (a `ResponsesChat`) is sent to
the upstream's own `POST /v1/responses` (`translate/responses_upstream.py`); chat completions to the
same deployment still go to `/chat/completions`. The choice is made here, per deployment, from the
request's type: the gateway, its hooks and failover stay the same for both (see the README).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, TypeVar

from yarl import URL

from interlock.errors import UpstreamError
from interlock.plugins import Plugin, ProviderFactory
from interlock.providers.base import Provider, ProviderContext
from interlock.providers.http import (
    RemoteOptions,
    api_key_from_env,
    client_timeout,
    read_body,
    sse_event_batches,
    upstream_call,
)
from interlock.settings import ModelSettings
from interlock.translate.openai import (
    chat_payload,
    embedding_payload,
    parse_chat_response,
    parse_chunk,
    parse_embedding_response,
    unsendable,
)
from interlock.translate.openai_relay import RelayBatch, RelayChunk, relay_chunk
from interlock.translate.responses import ResponsesChat
from interlock.translate.responses_upstream import ResponsesEventReader, parse_response, responses_payload
from interlock.types import Batch, ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from interlock.types.tenancy import CACHE_PARTITION, cache_salt_of

C = TypeVar("C", ChatChunk, RelayChunk)


class Options(RemoteOptions):
    """`openai_compatible`: `base_url` ends where OpenAI's `/v1` does; the key is sent as a bearer token.

    `responses_api`: "chat" (default) translates `/v1/responses` requests to chat completions;
    "native" sends them to the upstream's own `/v1/responses`, always with `store: false`.
    """

    responses_api: Literal["chat", "native"] = "chat"
    # Send each request's `cache_salt` (vLLM's per-request prefix-cache namespace) from its caller's
    # partition (`[engine] cache_scope`, `types.tenancy`); off for upstreams that refuse unknown fields.
    cache_salt: bool = False


class OpenAICompatibleProvider(Provider):
    """Relays chat and embeddings to an OpenAI-compatible `base_url`."""

    kind = "openai_compatible"

    def __init__(
        self, alias: str, model: ModelSettings, context: ProviderContext, options: Options | None = None
    ) -> None:
        super().__init__(alias, model)
        options = options or model.plugin_options(Options)
        self._context = context
        self._base = options.base_url.rstrip("/")
        self._chat_url = URL(f"{self._base}/chat/completions")  # parsed once, not on every request
        self._responses_url = URL(f"{self._base}/responses") if options.responses_api == "native" else None
        key = api_key_from_env(alias, options, context.settings.source)
        self._headers = {**({"authorization": f"Bearer {key}"} if key else {}), **options.headers}
        self._timeout = client_timeout(context.settings.server)
        self._salted = options.cache_salt

    def _payload(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        return self._salt(chat_payload(request, self.upstream_model, stream=stream))

    def _salt(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body with its caller's `cache_salt` (chat and native Responses requests alike), when salted."""
        if self._salted:
            salt = cache_salt_of(CACHE_PARTITION.get())
            if salt is None:
                body.pop("cache_salt", None)
            else:
                body["cache_salt"] = salt
        return body

    def _native(self, request: ChatRequest) -> URL | None:
        """The upstream's `/v1/responses`, when this request came to ours and the deployment serves it natively."""
        return self._responses_url if isinstance(request, ResponsesChat) else None

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """One upstream completion (or Responses object, for a native Responses request)."""
        native = self._native(request)
        if native is not None:
            return await self._respond(native, request)
        url = self._chat_url
        body = self._payload(request, stream=False)
        try:
            async with upstream_call(self._context.http(), url, body, self._headers, self._timeout) as resp:
                raw = await read_body(resp, url)
        except TypeError as exc:
            raise unsendable(body, exc) from None
        return parse_chat_response(raw, self.alias)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Upstream chunks as they arrive; a stream that ends without `[DONE]` is an error."""
        async for batch in self.stream_batches(request):
            for chunk in batch:
                yield chunk

    def stream_batches(self, request: ChatRequest) -> AsyncIterator[list[ChatChunk]]:
        """Upstream chunks, batched by the read that brought them."""
        native = self._native(request)
        if native is not None:
            return self._respond_batches(native, request)
        return self._sse(request, parse_chunk, Batch.final)

    def relays(self, request: ChatRequest) -> bool:
        """Chat completions (not a native Responses request) are relayed chunk for chunk."""
        return self._native(request) is None

    def relay_batches(self, request: ChatRequest) -> AsyncIterator[list[RelayChunk]]:
        """The upstream's chunks as they came, with the alias as their model (`translate.openai_relay`)."""
        return self._sse(request, relay_chunk, RelayBatch.final)

    async def _sse(
        self, request: ChatRequest, parse: Callable[[bytes, str], C | None], final: Callable[[list[C]], list[C]]
    ) -> AsyncIterator[list[C]]:
        """The upstream's chat completion stream, each event through `parse`, batched by the read that brought them."""
        url = self._chat_url
        body = self._payload(request, stream=True)
        try:
            async with upstream_call(self._context.http(), url, body, self._headers, self._timeout) as resp:
                async for events in sse_event_batches(resp, url):
                    batch: list[C] = []
                    for _, data in events:
                        try:
                            chunk = parse(data, self.alias)
                        except UpstreamError:
                            if batch:
                                yield batch  # what came before the bad event still reaches the client
                            raise
                        if chunk is None:
                            if batch:
                                yield final(batch)
                            return
                        batch.append(chunk)
                    yield batch
        except TypeError as exc:
            raise unsendable(body, exc) from None
        raise UpstreamError("the upstream stream ended before [DONE]", code="upstream_truncated")

    async def _respond(self, url: URL, request: ChatRequest) -> ChatResponse:
        """One upstream Responses object, as a chat completion."""
        body = self._salt(responses_payload(request, self.upstream_model, stream=False))
        try:
            async with upstream_call(self._context.http(), url, body, self._headers, self._timeout) as resp:
                raw = await read_body(resp, url)
        except TypeError as exc:
            raise unsendable(body, exc) from None
        return parse_response(raw, self.alias)

    async def _respond_batches(self, url: URL, request: ChatRequest) -> AsyncIterator[list[ChatChunk]]:
        """Upstream Responses events as chat chunks, batched by read; a stream without `response.completed` fails."""
        body = self._salt(responses_payload(request, self.upstream_model, stream=True))
        reader = ResponsesEventReader(self.alias)
        try:
            async with upstream_call(self._context.http(), url, body, self._headers, self._timeout) as resp:
                async for events in sse_event_batches(resp, url):
                    batch: list[ChatChunk] = []
                    for _, data in events:
                        try:
                            batch += reader.feed(data)
                        except UpstreamError:
                            if batch:
                                yield batch  # what came before the bad event still reaches the client
                            raise
                        if reader.done:
                            yield Batch.final(batch)
                            return
                    if batch:
                        yield batch
        except TypeError as exc:
            raise unsendable(body, exc) from None
        raise UpstreamError("the upstream stream ended before response.completed", code="upstream_truncated")

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Upstream embeddings."""
        url = f"{self._base}/embeddings"
        body = embedding_payload(request, self.upstream_model)
        try:
            async with upstream_call(self._context.http(), url, body, self._headers, self._timeout) as resp:
                raw = await read_body(resp, url)
        except TypeError as exc:
            raise unsendable(body, exc) from None
        return parse_embedding_response(raw, self.alias)


def create(alias: str, model: ModelSettings, context: ProviderContext, options: Options | None = None) -> Provider:
    """The `openai_compatible` provider for one deployment (options read from `model` when not given)."""
    return OpenAICompatibleProvider(alias, model, context, options)


PLUGIN: Plugin[ProviderFactory] = Plugin("openai_compatible", Options, create)
"""Published as the `openai_compatible` entry point of `interlock.providers`."""
