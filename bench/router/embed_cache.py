"""An on-disk cache of router embeddings, keyed by a hash of the embedder name and the text."""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from interlock.routing.router.features import Embedder

CACHE = Path(__file__).resolve().parent / "cache"


def _key(name: str, text: str) -> str:
    return hashlib.sha256(f"{name}\0{text}".encode()).hexdigest()[:24]


def _file(name: str) -> Path:
    return CACHE / (name.replace("/", "_") + ".npz")


def cached_embed(embedder: Embedder, texts: Sequence[str], chunk: int = 512) -> np.ndarray:
    """Embeddings of `texts`, computing (and saving every `chunk` texts) only the ones not cached yet."""
    CACHE.mkdir(parents=True, exist_ok=True)
    file = _file(embedder.name)
    table: dict[str, np.ndarray] = {}
    if file.is_file():
        with np.load(file) as z:
            table = dict(zip(z["keys"].tolist(), z["vectors"], strict=True))
    keys = [_key(embedder.name, t) for t in texts]
    todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in table}.items())
    start = time.perf_counter()
    for i in range(0, len(todo), chunk):
        part = todo[i : i + chunk]
        vectors = embedder.embed([t for _, t in part])
        table.update(zip([k for k, _ in part], vectors, strict=True))
        np.savez(file, keys=np.array(list(table)), vectors=np.stack(list(table.values())))
        done = i + len(part)
        rate = done / (time.perf_counter() - start)
        print(f"  {embedder.name}: {done}/{len(todo)} embedded, {rate:.1f}/s", file=sys.stderr, flush=True)
    return np.stack([table[k] for k in keys]).astype(np.float32)
