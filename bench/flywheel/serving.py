"""Serving a fine-tune: a GGUF LoRA adapter on the base model, or one merged GGUF. Load time and tokens/s.

    nice -n 19 timeout 1200 .venv/bin/python bench/flywheel/serving.py [--adapter A.gguf --merged M.gguf]

Without files it builds an adapter of the shape `interlock tune` writes by default (rank 16 on every
attention and MLP projection of all 30 layers, small random weights) and its merge, so the serving cost
can be measured without training first. Each variant is loaded on the embedded engine (`local`
provider) and answers the same prompts greedily; the numbers are medians over the prompts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from interlock.engines.gguf import default_model_path
from interlock.engines.training.adapters import LoraWeights, write_lora_gguf, write_merged_gguf
from interlock.engines.training.lora import TARGETS
from interlock.providers.local import LocalChatProvider
from interlock.providers.local import Options as LocalOptions
from interlock.settings import EngineSettings, ModelSettings
from interlock.types import ChatRequest

PROMPTS = [
    "Write a short note to a colleague about the invoice from Acme due on Friday.",
    "List three things to check before paying an invoice.",
    "Explain what a currency code is in two sentences.",
]
_SHAPES = {  # SmolLM2-135M: hidden 576, 9 heads x 64, 3 KV heads, MLP 1536
    "q_proj": (576, 576),
    "k_proj": (192, 576),
    "v_proj": (192, 576),
    "o_proj": (576, 576),
    "gate_proj": (1536, 576),
    "up_proj": (1536, 576),
    "down_proj": (576, 1536),
}


def synthetic(folder: Path, rank: int = 16, alpha: float = 32.0) -> tuple[Path, Path]:
    """A random all-layer adapter and its merge, written into `folder`."""
    rng = np.random.default_rng(0)
    weights = {}
    for layer in range(30):
        for t in TARGETS:
            out, inp = _SHAPES[t]
            part = "self_attn" if t.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else "mlp"
            weights[f"model.layers.{layer}.{part}.{t}"] = LoraWeights(
                a=(rng.normal(size=(rank, inp)) * 0.01).astype(np.float32),
                b=(rng.normal(size=(out, rank)) * 0.01).astype(np.float32),
            )
    adapter, merged = folder / "adapter.gguf", folder / "merged.gguf"
    write_lora_gguf(adapter, weights, alpha=alpha, n_head=9, n_head_kv=3, name="synthetic")
    write_merged_gguf(default_model_path(), merged, weights, scale=alpha / rank, name="synthetic")
    return adapter, merged


async def measure(name: str, options: LocalOptions, max_tokens: int) -> dict[str, Any]:
    """Load time and decode speed of one variant."""
    engine = EngineSettings(slots=1, n_ctx_per_slot=512, threads=2)
    provider = LocalChatProvider(name, ModelSettings(provider="local"), engine, options)
    t0 = time.monotonic()
    await provider.start()
    load = time.monotonic() - t0
    rates = []
    try:
        for prompt in PROMPTS:
            request = ChatRequest.model_validate(
                {
                    "model": name,
                    "messages": [{"role": "user", "content": prompt}],
                    "temperature": 0,
                    "max_tokens": max_tokens,
                }
            )
            t1 = time.monotonic()
            response = await provider.chat(request)
            assert response.usage is not None
            rates.append(response.usage.completion_tokens / (time.monotonic() - t1))
    finally:
        await provider.close()
    return {"variant": name, "load_seconds": round(load, 2), "tokens_per_second": round(statistics.median(rates), 1)}


def main() -> None:
    """Measure base, adapter and merged; print JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", type=Path)
    parser.add_argument("--merged", type=Path)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.adapter is None or args.merged is None:
            args.adapter, args.merged = synthetic(Path(tmp))
        sizes = {
            "adapter_mb": round(args.adapter.stat().st_size / 1e6, 1),
            "merged_mb": round(args.merged.stat().st_size / 1e6, 1),
        }
        variants = [
            ("base", LocalOptions()),
            ("base + LoRA adapter", LocalOptions(lora=str(args.adapter))),
            ("merged GGUF", LocalOptions(path=str(args.merged))),
        ]

        async def run() -> list[dict[str, Any]]:
            return [await measure(name, options, args.max_tokens) for name, options in variants]

        print(json.dumps({"files": sizes, "results": asyncio.run(run())}, indent=2))


if __name__ == "__main__":
    main()
