"""Prompt features for the router: static token vectors (fast), or MiniLM sentence vectors (slow).

The default concatenates two static views: the mean of MiniLM's input token vectors and the mean of the
local chat model SmolLM2-135M's input token vectors. Neither runs a transformer; together they take well
under a millisecond per prompt and tell MMLU subjects apart better than either alone (bench/router).

The SmolLM2 table is read from the engine's GGUF file, so converting that file (another quantisation)
changes the features. Each embedder has an `identity`, a fingerprint of the weights behind it, that a
router file records; loading a router against other weights is refused (`model.LearnedRouter`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from safetensors import safe_open
from tokenizers import Tokenizer, models, pre_tokenizers

from interlock.engines.embeddings.minilm import SentenceEncoder, packaged_model_dir
from interlock.engines.gguf import GgufFile, default_model_path
from interlock.routing.router.prompt import split_conversation

Floats = npt.NDArray[np.float32]

MINILM = "all-MiniLM-L6-v2"
MINILM_STATIC = "all-MiniLM-L6-v2/static"
SMOLLM2_STATIC = "SmolLM2-135M/static"
COMBINED_STATIC = "all-MiniLM-L6-v2+SmolLM2-135M/static"
EMBEDDERS = (COMBINED_STATIC, MINILM_STATIC, SMOLLM2_STATIC, MINILM)
# The router reads the end of a long prompt: the question usually comes last, after any context.
DEFAULT_MAX_TOKENS = 256
# The weight of a conversation's earlier turns next to its last user turn (see `embed_conversations`).
SUMMARY_WEIGHT = 0.3


class Embedder(Protocol):
    """Texts in, one unit-norm float32 row per text out."""

    @property
    def name(self) -> str:
        """The name a router file records, so the server can rebuild the same embedder."""
        ...

    @property
    def identity(self) -> str:
        """A fingerprint of the weights behind the features: a router file refuses an embedder whose differs."""
        ...

    def embed(self, texts: Sequence[str]) -> Floats:
        """Unit-norm float32 vectors, shape (len(texts), dimensions)."""
        ...


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()[:16]


def _unit_rows(x: Floats) -> Floats:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)


class StaticEmbedder:
    """The mean of a model's input token vectors over the last `max_tokens` tokens: no transformer, < 1 ms."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        table: npt.NDArray[Any],
        max_tokens: int = DEFAULT_MAX_TOKENS,
        name: str = MINILM_STATIC,
    ) -> None:
        self._tokenizer = tokenizer
        # Kept as float16 (half the memory: ~80 MB for both default tables); means are taken in float32.
        self._table = np.ascontiguousarray(table, dtype=np.float16)
        self._max_tokens = max_tokens
        self._name = name
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
            table = f.get_tensor("embeddings.word_embeddings.weight")
        return cls(tokenizer, table, max_tokens)

    @classmethod
    def load_smollm2(cls, path: Path | None = None, max_tokens: int = DEFAULT_MAX_TOKENS) -> StaticEmbedder:
        """SmolLM2's byte-level BPE tokenizer and its (Q8_0) token-embedding table, read from the GGUF file."""
        gguf = GgufFile.open(Path(path) if path is not None else default_model_path())
        tokens = gguf.metadata["tokenizer.ggml.tokens"]
        merges = [tuple(m.split(" ", 1)) for m in gguf.metadata["tokenizer.ggml.merges"]]
        tokenizer = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
        # SmolLM2 splits digits one by one before byte-level BPE.
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
        return cls(tokenizer, gguf.tensor("token_embd.weight", np.float16), max_tokens, SMOLLM2_STATIC)

    @property
    def name(self) -> str:
        """See `Embedder.name`."""
        return self._name

    @cached_property
    def identity(self) -> str:
        """See `Embedder.identity`: the token table's bytes and the vocabulary (~0.1 s, once)."""
        return _digest(self._table.tobytes(), str(self._tokenizer.get_vocab_size()).encode())

    def embed(self, texts: Sequence[str]) -> Floats:
        """See `Embedder.embed`."""
        out = np.zeros((len(texts), self._table.shape[1]), dtype=np.float32)
        for row, enc in enumerate(self._tokenizer.encode_batch(list(texts), add_special_tokens=False)):
            ids = [i for i in enc.ids if i not in self._special][-self._max_tokens :]
            if ids:
                out[row] = self._table[ids].mean(0, dtype=np.float32)
        return _unit_rows(out)


class ConcatEmbedder:
    """Several embedders side by side, each unit-norm and weighted equally; the result is unit-norm."""

    def __init__(self, name: str, parts: Sequence[Embedder]) -> None:
        self._name = name
        self._parts = tuple(parts)

    @property
    def name(self) -> str:
        """See `Embedder.name`."""
        return self._name

    @property
    def identity(self) -> str:
        """See `Embedder.identity`."""
        return "+".join(p.identity for p in self._parts)

    def embed(self, texts: Sequence[str]) -> Floats:
        """See `Embedder.embed`."""
        joined = np.hstack([p.embed(texts) for p in self._parts]) / np.float32(np.sqrt(len(self._parts)))
        return np.asarray(joined, dtype=np.float32)


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

    @cached_property
    def identity(self) -> str:
        """See `Embedder.identity`: the packaged model file's bytes."""
        return _digest((packaged_model_dir() / "model.safetensors").read_bytes())

    def _tail(self, text: str) -> str:
        enc = self._tokenizer.encode(text, add_special_tokens=False)
        if len(enc.ids) <= self._max_tokens - 2:
            return text
        start = enc.offsets[len(enc.ids) - (self._max_tokens - 2)][0]
        return text[start:]

    def embed(self, texts: Sequence[str]) -> Floats:
        """See `Embedder.embed`."""
        return self._encoder.encode([self._tail(t) for t in texts])


def embed_conversations(embedder: Embedder, texts: Sequence[str], summary_weight: float = SUMMARY_WEIGHT) -> Floats:
    """Embeddings of `prompt.conversation_text` strings: the last turn plus `summary_weight` times the summary.

    A plain prompt (no summary) embeds exactly as `embedder.embed` would embed it; rows are unit-norm.
    """
    parts = [split_conversation(t) for t in texts]
    out = embedder.embed([last for _, last in parts])
    with_summary = [i for i, (summary, _) in enumerate(parts) if summary]
    if with_summary:
        earlier = embedder.embed([parts[i][0] for i in with_summary])
        out[with_summary] = _unit_rows(out[with_summary] + np.float32(summary_weight) * earlier)
    return out


def load_embedder(name: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> Embedder:
    """The embedder a router file names."""
    if name == MINILM:
        return MiniLMEmbedder.load(max_tokens)
    if name == MINILM_STATIC:
        return StaticEmbedder.load(max_tokens=max_tokens)
    if name == SMOLLM2_STATIC:
        return StaticEmbedder.load_smollm2(max_tokens=max_tokens)
    if name == COMBINED_STATIC:
        parts = (StaticEmbedder.load(max_tokens=max_tokens), StaticEmbedder.load_smollm2(max_tokens=max_tokens))
        return ConcatEmbedder(COMBINED_STATIC, parts)
    raise ValueError(f"unknown router embedder {name!r}; known: {', '.join(EMBEDDERS)}")
