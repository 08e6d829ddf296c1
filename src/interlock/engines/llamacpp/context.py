"""The llama context the engine decodes in: creating it, applying a LoRA adapter, copying KV cells between slots."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

import llama_cpp

from interlock.engines.llamacpp.model import GgufModel
from interlock.settings import EngineSettings


def create_context(model: GgufModel, settings: EngineSettings, *, kv_unified: bool) -> tuple[Any, int, int]:
    """A context with one sequence per slot: `(ctx, n_batch, n_ctx_per_slot)`, the last as llama.cpp granted it."""
    s = settings
    threads = s.threads or os.cpu_count() or 1
    n_batch = max(s.n_batch, s.slots)
    params = llama_cpp.llama_context_default_params()
    # Non-unified KV splits n_ctx evenly between sequences; unified KV shares all cells and we
    # cap each slot ourselves. Either way every slot can really hold n_ctx_per_slot tokens.
    params.n_ctx = s.slots * s.n_ctx_per_slot
    params.n_seq_max = s.slots
    params.kv_unified = kv_unified
    params.n_batch = params.n_ubatch = n_batch
    params.n_threads = params.n_threads_batch = threads
    params.no_perf = True
    ctx = llama_cpp.llama_init_from_model(model.ptr, params)
    if not ctx:
        raise RuntimeError("llama.cpp could not create a context (out of memory?)")
    per_seq = int(llama_cpp.llama_n_ctx_seq(ctx))
    return ctx, n_batch, min(s.n_ctx_per_slot, per_seq)


def apply_lora(model: GgufModel, ctx: Any, path: Path, scale: float) -> Any:
    """Load a GGUF LoRA adapter and apply it to every sequence of `ctx`; returns the adapter to free later."""
    if not path.is_file():
        raise FileNotFoundError(f"LoRA adapter {path} does not exist")
    lora = llama_cpp.llama_adapter_lora_init(model.ptr, str(path).encode())
    if not lora:
        raise RuntimeError(f"llama.cpp could not load the LoRA adapter {path} for {model.path.name}")
    adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(lora)
    scales = (ctypes.c_float * 1)(scale)
    if llama_cpp.llama_set_adapters_lora(ctx, adapters, 1, scales) != 0:
        llama_cpp.llama_adapter_lora_free(lora)
        raise RuntimeError(f"llama.cpp could not apply the LoRA adapter {path}")
    return lora


def sequence_state(ctx: Any, seq_id: int) -> Any:
    """The KV cells of one sequence, serialised by llama.cpp (`llama_state_seq_get_data`) as a ctypes array;
    None if llama.cpp could not."""
    size = llama_cpp.llama_state_seq_get_size(ctx, seq_id)
    if not size:
        return None
    state = (ctypes.c_uint8 * size)()
    return state if llama_cpp.llama_state_seq_get_data(ctx, state, size, seq_id) == size else None


def load_sequence(ctx: Any, seq_id: int, state: Any, n: int) -> bool:
    """Make sequence `seq_id` hold positions [0, n) of a state from `sequence_state`, and nothing else.

    False if llama.cpp refused the state; the sequence is then empty.
    """
    mem = llama_cpp.llama_get_memory(ctx)
    if llama_cpp.llama_state_seq_set_data(ctx, state, ctypes.sizeof(state), seq_id) == 0:
        llama_cpp.llama_memory_seq_rm(mem, seq_id, -1, -1)
        return False
    llama_cpp.llama_memory_seq_rm(mem, seq_id, n, -1)
    return True


def copy_prefix(ctx: Any, src: int, dst: int, n: int, *, kv_unified: bool) -> bool:
    """Make sequence `dst` hold the KV cells of positions [0, n) of sequence `src`, and nothing else.

    False if llama.cpp could not copy them; `dst` is then empty.
    """
    mem = llama_cpp.llama_get_memory(ctx)
    if kv_unified:  # one cell store: the cells get a second sequence id, nothing is copied
        llama_cpp.llama_memory_seq_rm(mem, dst, -1, -1)
        llama_cpp.llama_memory_seq_cp(mem, src, dst, 0, n)
        return True
    # Each sequence has its own stream. llama.cpp's own copy (`llama_memory_seq_cp`) moves the whole
    # stream, n_ctx_per_slot cells, at the start of the next decode; the state round trip moves only
    # the cells `src` holds, now (bench/RESULTS.md, issue 18).
    state = sequence_state(ctx, src)
    if state is None:
        llama_cpp.llama_memory_seq_rm(mem, dst, -1, -1)
        return False
    return load_sequence(ctx, dst, state, n)
