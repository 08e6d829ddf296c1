"""A LoRA adapter as GGUF for llama.cpp: the adapter file, or the base model with the adapter merged in.

Trained weights arrive in transformers' layout (`model.layers.N.self_attn.q_proj`, A: rank x in,
B: out x rank). llama.cpp names them `blk.N.attn_q.weight.lora_a|lora_b` with the same row-major
shapes. One catch: llama.cpp's converter permutes the rows of the query and key projections (its
rotary embedding pairs neighbouring rows, transformers pairs the two halves) and transformers undoes
that permutation when it loads a GGUF, so a delta learned in transformers' layout must be permuted
back: B's rows for an adapter, the delta's rows for a merge. Without it the adapter still loads but
scrambles attention.

Only numpy and the `gguf` package are used here (no torch), so the parent process can read and check
these files too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]

_HF_NAME = re.compile(r"^(?:base_model\.model\.)?model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)$")
_GGUF_SUFFIX = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}


class AdapterError(ValueError):
    """Weights this writer cannot place in the base model."""


@dataclass(frozen=True)
class LoraWeights:
    """One adapted linear layer: `delta = scale * B @ A`."""

    a: Floats  # rank x in
    b: Floats  # out x rank


def gguf_name(hf_module: str) -> str:
    """`model.layers.3.self_attn.q_proj` → `blk.3.attn_q` (the tensor is that plus `.weight`)."""
    m = _HF_NAME.match(hf_module)
    if m is None or m[3] not in _GGUF_SUFFIX:
        raise AdapterError(f"no llama.cpp tensor for {hf_module!r} (LoRA on attention and MLP projections only)")
    return f"blk.{m[1]}.{_GGUF_SUFFIX[m[3]]}"


def permute_rows(w: Floats, n_head: int) -> Floats:
    """llama.cpp's row order for a query/key projection given in transformers' order (rows = outputs)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _for_llamacpp(name: str, w: Floats, n_head: int, n_head_kv: int) -> Floats:
    if name.endswith(".attn_q"):
        return permute_rows(w, n_head)
    if name.endswith(".attn_k"):
        return permute_rows(w, n_head_kv)
    return w


def write_lora_gguf(
    path: Path, weights: Mapping[str, LoraWeights], *, alpha: float, n_head: int, n_head_kv: int, name: str
) -> None:
    """Write `weights` (keyed by transformers module name) as a llama.cpp LoRA adapter for a llama model."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("general.name", name)
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    for module, lw in sorted(weights.items()):
        base = gguf_name(module)
        b = _for_llamacpp(base, lw.b, n_head, n_head_kv)
        writer.add_tensor(f"{base}.weight.lora_a", np.ascontiguousarray(lw.a, dtype=np.float16))
        writer.add_tensor(f"{base}.weight.lora_b", np.ascontiguousarray(b, dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_merged_gguf(
    base_path: Path, path: Path, weights: Mapping[str, LoraWeights], *, scale: float, name: str
) -> None:
    """Copy the base GGUF with each adapted tensor replaced by `W + scale * B @ A`, requantised to Q8_0.

    Untouched tensors are copied byte for byte (still Q4_1); the adapted ones are dequantised, merged and
    written as Q8_0, which keeps the small delta that Q4_1 would round away.
    """
    import gguf

    reader = gguf.GGUFReader(str(base_path))
    arch = str(reader.fields["general.architecture"].contents())
    n_head = int(reader.fields[f"{arch}.attention.head_count"].contents())
    n_head_kv = int(reader.fields[f"{arch}.attention.head_count_kv"].contents())
    deltas: dict[str, Floats] = {}
    for module, lw in weights.items():
        base = gguf_name(module)
        deltas[f"{base}.weight"] = _for_llamacpp(
            base, scale * (lw.b.astype(np.float32) @ lw.a.astype(np.float32)), n_head, n_head_kv
        )
    writer = gguf.GGUFWriter(str(path), arch=arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value: Any = field.contents()
        if key == "general.name":
            value = name
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, value, vtype, sub_type=sub)
    q8 = gguf.GGMLQuantizationType.Q8_0
    for t in reader.tensors:
        delta = deltas.pop(t.name, None)
        if delta is None:
            writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
            continue
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        if w.shape != delta.shape:
            raise AdapterError(f"{t.name}: the adapter's delta is {delta.shape}, the base tensor {w.shape}")
        writer.add_tensor(t.name, gguf.quants.quantize(w + delta, q8), raw_dtype=q8)
    if deltas:
        raise AdapterError(f"the base model has no tensors {sorted(deltas)[:3]}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
