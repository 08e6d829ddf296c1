"""Serves /v1/embeddings from the sentence encoder that ships with the gateway, in process.

The encoder is CPU-bound numpy, so it runs on one dedicated worker thread: requests queue there
instead of oversubscribing the cores, and the event loop stays free.
"""

from __future__ import annotations

import asyncio
import base64
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from interlock.engines.embeddings.minilm import SentenceEncoder
from interlock.errors import BadRequest, Unavailable
from interlock.providers.base import Provider, ProviderContext
from interlock.types import Embedding, EmbeddingRequest, EmbeddingResponse, Usage

if TYPE_CHECKING:
    from interlock.settings import ModelSettings

T = TypeVar("T")


def shorten(vectors: npt.NDArray[np.float32], dimensions: int) -> npt.NDArray[np.float32]:
    """Keep the first `dimensions` components and re-normalise, like OpenAI's `dimensions` option."""
    cut = vectors[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return np.asarray(cut / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)


def to_base64(vector: npt.NDArray[np.float32]) -> str:
    """A vector as OpenAI's base64 encoding format: little-endian float32 bytes."""
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")


class LocalEmbeddingProvider(Provider):
    """Embeddings from a local sentence-transformers folder; by default the packaged all-MiniLM-L6-v2."""

    kind = "local"

    def __init__(self, alias: str, model: ModelSettings, context: ProviderContext, path: str | None = None) -> None:
        super().__init__(alias, model)
        if path is None:  # built directly, not by the `local` plugin: the path is an option in `model`
            from interlock.providers.local import Options

            path = model.plugin_options(Options).path
        self._path = Path(path).expanduser() if path else None
        self._encoder: SentenceEncoder | None = None
        # One worker: encodes run one at a time, and a cancelled request cannot start a second
        # encode beside one that is still running (as releasing a lock on cancellation would).
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{alias}")

    async def start(self) -> None:
        """Load the model off the event loop."""
        self._encoder = await self._run(partial(SentenceEncoder.load, self._path))

    async def close(self) -> None:
        """Stop the worker thread once queued encodes finish."""
        await asyncio.to_thread(self._worker.shutdown, wait=True)

    def readiness(self) -> tuple[bool, str]:
        """Ready once the model is loaded."""
        return (True, "ready") if self._encoder is not None else (False, "loading")

    def count_tokens(self, text: str) -> int | None:
        """Tokens the encoder reads for `text`, or None before the model is loaded."""
        return None if self._encoder is None else self._encoder.count_tokens([text])[0]

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Unit-norm embeddings for each input, as floats or base64."""
        encoder = self._encoder
        if encoder is None:
            raise Unavailable(f"model '{self.alias}' is still loading; retry shortly")
        try:
            texts = request.texts()
        except ValueError as exc:
            raise BadRequest(
                f"model '{self.alias}' embeds text only; send 'input' as a string or a list of strings",
                code="invalid_input",
                param="input",
            ) from exc
        if request.dimensions is not None and request.dimensions > encoder.dimensions:
            raise BadRequest(
                f"'dimensions' is {request.dimensions}, but model '{self.alias}' makes vectors of "
                f"{encoder.dimensions}; ask for {encoder.dimensions} or fewer",
                code="invalid_dimensions",
                param="dimensions",
            )

        vectors, counts = await self._run(partial(_encode, encoder, texts))
        if request.dimensions is not None and request.dimensions < encoder.dimensions:
            vectors = shorten(vectors, request.dimensions)
        data = [
            Embedding(
                index=i,
                embedding=to_base64(v) if request.encoding_format == "base64" else v.tolist(),
            )
            for i, v in enumerate(vectors)
        ]
        tokens = sum(counts)
        return EmbeddingResponse(data=data, model=self.alias, usage=Usage.of(tokens, 0))

    async def _run(self, fn: partial[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn)


def _encode(encoder: SentenceEncoder, texts: list[str]) -> tuple[npt.NDArray[np.float32], list[int]]:
    return encoder.encode(texts), encoder.count_tokens(texts)
