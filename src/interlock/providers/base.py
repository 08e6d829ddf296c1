"""The one interface every provider implements, and the context providers are built with.

A provider talks to one model: it translates the gateway's typed request, calls the model, and
reports usage. It knows nothing of HTTP serving, keys or budgets. Providers are plugins in
`interlock.plugins.PROVIDERS` (the `interlock.providers` entry-point group): a name, an `Options`
model and a factory `create(alias, model, context, options) -> Provider`; the built-ins register the
same way third-party packages do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from interlock.errors import BadRequest
from interlock.translate.openai_relay import RelayChunk
from interlock.types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse

if TYPE_CHECKING:
    import aiohttp

    from interlock.settings import ModelSettings, Settings


@dataclass
class ProviderContext:
    """Shared resources handed to provider factories at startup."""

    settings: Settings
    http: Callable[[], aiohttp.ClientSession]
    shared: dict[str, Any] = field(default_factory=dict)


class Provider:
    """Talks to one model. Subclasses override what the model supports."""

    #: Registered name, such as "local" or "openai_compatible".
    kind: str = ""
    #: The version of the model actually served, where the provider can tell (a local file's SHA-256,
    #: 16 hex digits): shown in /v1/models, recorded on ledger rows. "" when unknown (a remote API).
    model_version: str = ""

    def __init__(self, alias: str, model: ModelSettings) -> None:
        self.alias = alias
        self.model = model
        self.upstream_model = model.model or alias

    async def start(self) -> None:
        """Acquire resources (load a model, open a session). Called once at startup."""

    async def close(self) -> None:
        """Release resources."""

    def readiness(self) -> tuple[bool, str]:
        """Whether the provider can serve now, and a short state for /readyz."""
        return True, "ready"

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """One complete chat answer. `usage` is None when the model did not report it."""
        raise BadRequest(f"model '{self.alias}' does not support chat completions", code="unsupported_model")

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """A streamed chat answer; the last chunk carries usage when the model reports it."""
        raise BadRequest(f"model '{self.alias}' does not support chat completions", code="unsupported_model")

    async def stream_batches(self, request: ChatRequest) -> AsyncIterator[list[ChatChunk]]:
        """The streamed answer in batches of chunks that are ready together (never an empty batch).

        The gateway consumes this. The default makes one batch per chunk of `stream`; a provider that
        reads several chunks at once (a remote SSE stream) overrides it, so they travel through the
        pipeline and out to the client as one write.
        """
        async for chunk in self.stream(request):
            yield [chunk]

    def relays(self, request: ChatRequest) -> bool:
        """Whether `relay_batches` serves this request: the upstream speaks OpenAI's chat protocol for it."""
        return False

    def relay_batches(self, request: ChatRequest) -> AsyncIterator[list[RelayChunk]]:
        """The streamed answer as the upstream's own OpenAI chunks, batched like `stream_batches`
        (`translate.openai_relay`). The gateway calls it, for a chat client, only where `relays` says so;
        a wrapper forwards both (`TracedProvider` does, with the same span as a stream)."""
        raise NotImplementedError(f"{type(self).__name__} does not relay OpenAI streams")

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embeddings for each input."""
        raise BadRequest(f"model '{self.alias}' does not support embeddings", code="unsupported_model")

    def count_tokens(self, text: str) -> int | None:
        """Count tokens with the model's own tokenizer, or None if this provider has none."""
        return None

    def count_prompt(self, request: ChatRequest) -> int | None:
        """The prompt tokens of `request` as the model sees them (its chat template applied), or None."""
        return None
