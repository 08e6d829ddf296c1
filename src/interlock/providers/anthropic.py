"""Anthropic's Messages API as an upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

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
from interlock.translate.anthropic_upstream import (
    AnthropicStreamReader,
    anthropic_response_to_chat,
    chat_request_to_anthropic,
)
from interlock.types import Batch, ChatChunk, ChatRequest, ChatResponse

API_VERSION = "2023-06-01"


class Options(RemoteOptions):
    """`anthropic`: `base_url` without `/v1` (such as https://api.anthropic.com); the key goes in `x-api-key`."""


class AnthropicProvider(Provider):
    """Translates chat requests to the Messages API and back."""

    kind = "anthropic"

    def __init__(
        self, alias: str, model: ModelSettings, context: ProviderContext, options: Options | None = None
    ) -> None:
        super().__init__(alias, model)
        options = options or model.plugin_options(Options)
        self._context = context
        self._url = options.base_url.rstrip("/") + "/v1/messages"
        self._headers = {"anthropic-version": API_VERSION, **options.headers}
        key = api_key_from_env(alias, options, context.settings.source)
        if key:
            self._headers["x-api-key"] = key
        self._timeout = client_timeout(context.settings.server)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """One Messages API call."""
        body = chat_request_to_anthropic(request.model_copy(update={"stream": False}), self.upstream_model)
        async with upstream_call(self._context.http(), self._url, body, self._headers, self._timeout) as resp:
            raw = await read_body(resp, self._url)
        try:
            data = orjson.loads(raw)
            return anthropic_response_to_chat(data, self.alias)
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            raise UpstreamError(
                "upstream sent an invalid Messages API response", code="bad_upstream_response"
            ) from None

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Messages API stream events as chat chunks; a stream without message_stop is an error."""
        async for batch in self.stream_batches(request):
            for chunk in batch:
                yield chunk

    async def stream_batches(self, request: ChatRequest) -> AsyncIterator[list[ChatChunk]]:
        """The chat chunks of each upstream read together (events that yield no chunk are skipped)."""
        body = chat_request_to_anthropic(request.model_copy(update={"stream": True}), self.upstream_model)
        reader = AnthropicStreamReader(self.alias)
        async with upstream_call(self._context.http(), self._url, body, self._headers, self._timeout) as resp:
            async for events in sse_event_batches(resp, self._url):
                batch: list[ChatChunk] = []
                for _, data in events:
                    try:
                        batch += reader.feed(orjson.loads(data))
                    except (orjson.JSONDecodeError, ValueError) as exc:
                        if batch:
                            yield batch  # what came before the bad event still reaches the client
                        if isinstance(exc, orjson.JSONDecodeError):
                            raise UpstreamError(
                                "upstream sent a malformed stream event", code="bad_upstream_response"
                            ) from None
                        raise UpstreamError(f"upstream error mid-stream: {exc}") from None
                    if reader.done:
                        break
                if batch:
                    yield Batch.final(batch) if reader.done else batch
                if reader.done:
                    return
        raise UpstreamError("the upstream stream ended before message_stop", code="upstream_truncated")


def create(alias: str, model: ModelSettings, context: ProviderContext, options: Options | None = None) -> Provider:
    """The `anthropic` provider for one deployment (options read from `model` when not given)."""
    return AnthropicProvider(alias, model, context, options)


PLUGIN: Plugin[ProviderFactory] = Plugin("anthropic", Options, create)
"""Published as the `anthropic` entry point of `interlock.providers`."""
