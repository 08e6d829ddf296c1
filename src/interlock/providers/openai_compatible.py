"""Any OpenAI-compatible upstream: vLLM, SGLang, llama.cpp server, Ollama, OpenRouter, DeepSeek, OpenAI."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
from interlock.types import Batch, ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse


class Options(RemoteOptions):
    """`openai_compatible`: `base_url` ends where OpenAI's `/v1` does; the key is sent as a bearer token."""


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
        key = api_key_from_env(alias, options, context.settings.source)
        self._headers = {**({"authorization": f"Bearer {key}"} if key else {}), **options.headers}
        self._timeout = client_timeout(context.settings.server)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """One upstream completion."""
        url = self._chat_url
        body = chat_payload(request, self.upstream_model, stream=False)
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

    async def stream_batches(self, request: ChatRequest) -> AsyncIterator[list[ChatChunk]]:
        """Upstream chunks, batched by the read that brought them."""
        url = self._chat_url
        body = chat_payload(request, self.upstream_model, stream=True)
        try:
            async with upstream_call(self._context.http(), url, body, self._headers, self._timeout) as resp:
                async for events in sse_event_batches(resp, url):
                    batch: list[ChatChunk] = []
                    for _, data in events:
                        try:
                            chunk = parse_chunk(data, self.alias)
                        except UpstreamError:
                            if batch:
                                yield batch  # what came before the bad event still reaches the client
                            raise
                        if chunk is None:
                            if batch:
                                yield Batch.final(batch)
                            return
                        batch.append(chunk)
                    yield batch
        except TypeError as exc:
            raise unsendable(body, exc) from None
        raise UpstreamError("the upstream stream ended before [DONE]", code="upstream_truncated")

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
