"""Dynamic in-context learning: a provider wrapper that puts the k most similar good past examples in the prompt.

The `in-context` provider plugin wraps another provider (`inner`, by default `local`) and a file of good
examples in OpenAI fine-tuning JSONL (what `interlock datasets export NAME` writes: each line a
conversation ending with the answer to imitate). At startup it embeds each example's last user message
with the bundled MiniLM encoder; per request it embeds the request's last user message, takes the `k`
examples with the highest cosine similarity (at least `min_similarity`), and inserts them after the
system message as earlier user/assistant turns, the most similar last (nearest the question). Nothing
else changes: the inner provider answers the rewritten request, and the prompt it counts (for budgets)
is the rewritten one.

Configured as a model alias (or one deployment of an alias, so it can be a variant next to the base and
the fine-tuned model):

    [models.extract-icl]
    provider = "in-context"
    examples = "train.jsonl"
    k = 3
    # any other key is the inner provider's option (here `local`'s `path`, `lora`)
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from interlock.engines.embeddings.minilm import SentenceEncoder
from interlock.plugins import PROVIDERS, Plugin, ProviderFactory
from interlock.providers.base import Provider, ProviderContext
from interlock.types import ChatChunk, ChatRequest, ChatResponse, Message

if TYPE_CHECKING:
    from interlock.settings import ModelSettings

Floats = npt.NDArray[np.float32]
_CACHE = 512  # query embeddings remembered (count_prompt and the answer embed the same text once)


class Options(BaseModel):
    """`in-context`: the examples, how many to show, and the wrapped provider (its options alongside)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    examples: str  # OpenAI fine-tuning JSONL of good examples
    k: int = Field(default=3, ge=1, le=32)
    min_similarity: float = Field(default=0.0, ge=-1.0, le=1.0)
    inner: str = "local"  # the provider that answers
    encoder_path: str | None = None  # a sentence-transformers folder; default: the bundled MiniLM


@dataclass(frozen=True)
class Demonstration:
    """One good past example: the user's question and the answer to imitate."""

    question: str
    answer: str


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content or "")


def load_demonstrations(path: Path) -> list[Demonstration]:
    """The (last user message, answer) pairs of a JSONL file; lines without both are skipped."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        messages = json.loads(line).get("messages") or []
        users = [m for m in messages[:-1] if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
            out.append(Demonstration(_text(users[-1]), _text(messages[-1])))
    return out


class ExampleIndex:
    """Demonstrations and their unit vectors; `nearest` is a cosine top-k."""

    def __init__(self, demonstrations: list[Demonstration], vectors: Floats) -> None:
        self.demonstrations = demonstrations
        self.vectors = vectors

    @classmethod
    def build(cls, demonstrations: list[Demonstration], encoder: SentenceEncoder) -> ExampleIndex:
        """Embed every demonstration's question."""
        return cls(demonstrations, encoder.encode([d.question for d in demonstrations]))

    def nearest(self, query: Floats, k: int, min_similarity: float = 0.0) -> list[tuple[float, Demonstration]]:
        """The `k` most similar demonstrations, most similar first."""
        if not self.demonstrations:
            return []
        scores = self.vectors @ query
        order = np.argsort(-scores, kind="stable")[:k]
        return [(float(scores[i]), self.demonstrations[i]) for i in order if scores[i] >= min_similarity]


def with_demonstrations(request: ChatRequest, shown: list[Demonstration]) -> ChatRequest:
    """`request` with the demonstrations as earlier turns after its leading system messages, the best last."""
    messages = list(request.messages)
    lead = 0
    while lead < len(messages) and messages[lead].role in ("system", "developer"):
        lead += 1
    turns: list[Message] = []
    for d in reversed(shown):
        turns.append(Message(role="user", content=d.question))
        turns.append(Message(role="assistant", content=d.answer))
    return request.model_copy(update={"messages": [*messages[:lead], *turns, *messages[lead:]]})


def _last_user_text(request: ChatRequest) -> str:
    for m in reversed(request.messages):
        if m.role == "user":
            return m.text()
    return ""


class InContextProvider(Provider):
    """Answers with `inner`, after adding the most similar good examples to the prompt."""

    kind = "in-context"

    def __init__(self, alias: str, model: ModelSettings, inner: Provider, options: Options) -> None:
        super().__init__(alias, model)
        self.inner = inner
        self.options = options
        self._encoder: SentenceEncoder | None = None
        self._index: ExampleIndex | None = None
        self._queries: OrderedDict[str, Floats] = OrderedDict()

    async def start(self) -> None:
        """Start the inner provider, and embed the examples on a worker thread meanwhile."""
        await asyncio.gather(self.inner.start(), asyncio.to_thread(self._load))
        self.model_version = self.inner.model_version

    def _load(self) -> None:
        path = Path(self.options.examples).expanduser()
        demonstrations = load_demonstrations(path)
        if not demonstrations:
            raise ValueError(f"in-context examples {path}: no conversation with a user message and an answer")
        encoder = SentenceEncoder.load(Path(self.options.encoder_path) if self.options.encoder_path else None)
        self._index = ExampleIndex.build(demonstrations, encoder)
        self._encoder = encoder

    async def close(self) -> None:
        """Close the inner provider."""
        await self.inner.close()

    def readiness(self) -> tuple[bool, str]:
        """The inner provider's, once the examples are embedded."""
        if self._index is None:
            return False, "embedding examples"
        return self.inner.readiness()

    def _query(self, text: str) -> Floats:
        found = self._queries.get(text)
        if found is None:
            assert self._encoder is not None
            found = self._encoder.encode([text])[0]
            self._queries[text] = found
            if len(self._queries) > _CACHE:
                self._queries.popitem(last=False)
        return found

    def augment(self, request: ChatRequest) -> ChatRequest:
        """The request as the inner provider sees it."""
        text = _last_user_text(request)
        if self._index is None or not text:
            return request
        shown = self._index.nearest(self._query(text), self.options.k, self.options.min_similarity)
        return with_demonstrations(request, [d for _, d in shown])

    async def _augmented(self, request: ChatRequest) -> ChatRequest:
        return await asyncio.to_thread(self.augment, request)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """The inner provider's answer to the augmented request."""
        return await self.inner.chat(await self._augmented(request))

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """The inner provider's stream (the query is embedded on this thread: a few milliseconds)."""
        return self.inner.stream(self.augment(request))

    async def stream_batches(self, request: ChatRequest) -> AsyncIterator[list[ChatChunk]]:
        """The inner provider's batches for the augmented request."""
        async for batch in self.inner.stream_batches(await self._augmented(request)):
            yield batch

    def count_tokens(self, text: str) -> int | None:
        """The inner provider's tokenizer."""
        return self.inner.count_tokens(text)

    def count_prompt(self, request: ChatRequest) -> int | None:
        """The augmented prompt, so a budget reserves for what is really sent."""
        return self.inner.count_prompt(self.augment(request))

    def stats(self) -> dict[str, Any]:
        """The inner provider's stats, when it has any, and the number of examples."""
        inner = getattr(self.inner, "stats", None)
        base = inner() if callable(inner) else {}
        return {**base, "examples": len(self._index.demonstrations) if self._index else 0}


def create(alias: str, model: ModelSettings, context: ProviderContext, options: Options | None = None) -> Provider:
    """The wrapper around the `inner` provider, built by its own plugin with the remaining keys as its options."""
    options = options or model.plugin_options(Options)
    plugin = PROVIDERS.get(options.inner)
    if plugin is None or plugin.name == "in-context":
        raise ValueError(f"in-context: 'inner' must name another provider, not {options.inner!r}")
    inner_options = plugin.options.model_validate(dict(options.model_extra or {}))
    inner = plugin.factory(alias, model, context, inner_options)
    if not isinstance(inner, Provider):
        raise TypeError(f"in-context: provider {options.inner!r} made a {type(inner).__name__}, not a Provider")
    return InContextProvider(alias, inner.model, inner, options)


PLUGIN: Plugin[ProviderFactory] = Plugin("in-context", Options, create)
"""Published as the `in-context` entry point of `interlock.providers`."""
