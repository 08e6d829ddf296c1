"""Prompt features for the router: MiniLM sentence vectors, or MiniLM's static token vectors (fast)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from safetensors import safe_open
from tokenizers import Tokenizer

from interlock.engines.embeddings.minilm import SentenceEncoder, packaged_model_dir

Floats = npt.NDArray[np.float32]

MINILM = "all-MiniLM-L6-v2"
MINILM_STATIC = "all-MiniLM-L6-v2/static"
EMBEDDERS = (MINILM, MINILM_STATIC)
# The router reads the end of a long prompt: the question usually comes last, after any context.
DEFAULT_MAX_TOKENS = 256


class Embedder(Protocol):
    """Texts in, one unit-norm float32 row per text out."""

    @property
    def name(self) -> str:
        """The name a router file records, so the server can rebuild the same embedder."""
        ...

    def embed(self, texts: Sequence[str]) -> Floats:
        """Unit-norm float32 vectors, shape (len(texts), dimensions)."""
        ...


def _unit_rows(x: Floats) -> Floats:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)


class StaticEmbedder:
    """The mean of MiniLM's input token vectors over the last `max_tokens` word pieces: no transformer, < 1 ms."""

    def __init__(self, tokenizer: Tokenizer, table: Floats, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self._tokenizer = tokenizer
        self._table = table
        self._max_tokens = max_tokens
        self._special = {tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")} - {None}

    @classmethod
    def load(cls, folder: Path | None = None, max_tokens: int = DEFAULT_MAX_TOKENS) -> StaticEmbedder:
        """Load the tokenizer and the word-embedding table of the packaged MiniLM model."""
        model = Path(folder) if folder is not None else packaged_model_dir()
        tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        # Only the word-embedding table: the transformer layers are not needed.
        with safe_open(str(model / "model.safetensors"), framework="numpy") as f:
            table = np.ascontiguousarray(f.get_tensor("embeddings.word_embeddings.weight"), dtype=np.float32)
        return cls(tokenizer, table, max_tokens)

    @property
    def name(self) -> str:
        """See `Embedder.name`."""
        return MINILM_STATIC

    def embed(self, texts: Sequence[str]) -> Floats:
        """See `Embedder.embed`."""
        out = np.zeros((len(texts), self._table.shape[1]), dtype=np.float32)
        for row, enc in enumerate(self._tokenizer.encode_batch(list(texts), add_special_tokens=False)):
            ids = [i for i in enc.ids if i not in self._special][-self._max_tokens :]
            if ids:
                out[row] = self._table[ids].mean(0)
        return _unit_rows(out)


class MiniLMEmbedder:
    """MiniLM sentence vectors of the last `max_tokens` word pieces of each text."""

    def __init__(self, encoder: SentenceEncoder, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self._encoder = encoder
        self._max_tokens = max_tokens
        folder = packaged_model_dir()
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    @classmethod
    def load(cls, max_tokens: int = DEFAULT_MAX_TOKENS) -> MiniLMEmbedder:
        """Load the packaged MiniLM encoder."""
        return cls(SentenceEncoder.load(), max_tokens)

    @property
    def name(self) -> str:
        """See `Embedder.name`."""
        return MINILM

    def _tail(self, text: str) -> str:
        enc = self._tokenizer.encode(text, add_special_tokens=False)
        if len(enc.ids) <= self._max_tokens - 2:
            return text
        start = enc.offsets[len(enc.ids) - (self._max_tokens - 2)][0]
        return text[start:]

    def embed(self, texts: Sequence[str]) -> Floats:
        """See `Embedder.embed`."""
        return self._encoder.encode([self._tail(t) for t in texts])


def load_embedder(name: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> Embedder:
    """The embedder a router file names."""
    if name == MINILM:
        return MiniLMEmbedder.load(max_tokens)
    if name == MINILM_STATIC:
        return StaticEmbedder.load(max_tokens=max_tokens)
    raise ValueError(f"unknown router embedder {name!r}; known: {', '.join(EMBEDDERS)}")
