"""Fine-tuning recipes: run a LoRA fine-tune of the embedded model in a subprocess, and register the result.

`tune` writes the recipe (`TrainSpec`) into the output folder and runs `python -m
interlock.engines.training.lora` on it, so torch is imported only in that process and the gateway
stays light. The child reports progress as JSON lines, handed to `on_event` as they come. A folder
that already holds a finished result of the same recipe (same data hash, base and hyper-parameters) is
not trained again; one holding a checkpoint of it resumes there; one of another recipe starts over.

Each finished run becomes a model version in `<home>/models/registry.json`: base file and hash,
dataset (name, version and content hash, or the data file's hash), hyper-parameters, metrics and the
SHA-256 of every file written, so what is served can be traced to what it was trained on.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from interlock.engines.gguf import default_model_path
from interlock.engines.training.lora import TrainSpec, sha256_file

TRAIN_MODULES = ("torch", "transformers", "peft", "gguf")
INSTALL_HINT = "pip install 'interlock[train]' (in a checkout: make install-train)"
Event = dict[str, Any]


class TuneError(RuntimeError):
    """A fine-tune that could not run or did not finish (the message says why)."""


@dataclass(frozen=True)
class DatasetRef:
    """Where the training data came from: a stored dataset version, or a file."""

    name: str | None
    version: int | None
    content_hash: str


def missing_modules() -> list[str]:
    """The training dependencies that are not installed (none: `interlock tune` can run)."""
    return [m for m in TRAIN_MODULES if importlib.util.find_spec(m) is None]


def _finished(spec: TrainSpec) -> dict[str, Any] | None:
    result = Path(spec.out) / "result.json"
    try:
        data = json.loads(result.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("spec_digest") != spec.digest():
        return None
    if not all((Path(spec.out) / f).is_file() for f in data.get("files", {}).values()):
        return None
    return data


def train(spec: TrainSpec, on_event: Callable[[Event], None], *, log: Path | None = None) -> dict[str, Any]:
    """Run the training process for `spec` (or reuse its finished result); returns `result.json`'s content."""
    missing = missing_modules()
    if missing:
        raise TuneError(f"fine-tuning needs {', '.join(missing)}: {INSTALL_HINT}")
    done = _finished(spec)
    if done is not None:
        on_event({"event": "reused", **done})
        return done
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    spec_file = out / "spec.json"
    spec_file.write_text(json.dumps(asdict(spec), indent=2))
    log = log or out / "train.log"
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}
    result: dict[str, Any] | None = None
    error: str | None = None
    with log.open("ab") as err:
        cmd = [sys.executable, "-m", "interlock.engines.training.lora", str(spec_file)]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env) as proc:
            assert proc.stdout is not None
            try:
                for raw in proc.stdout:
                    try:
                        event = json.loads(raw)
                    except ValueError:
                        continue
                    if not isinstance(event, dict):
                        continue
                    if event.get("event") == "done":
                        result = {k: v for k, v in event.items() if k != "event"}
                    elif event.get("event") == "error":
                        error = str(event.get("message"))
                    on_event(event)
            except BaseException:
                proc.kill()  # Ctrl-C: the last checkpoint stays, and the next run resumes from it
                proc.wait()  # Popen's own exit waits only briefly after a KeyboardInterrupt
                raise
        code = proc.returncode
    if error is not None:
        raise TuneError(error)
    if code != 0 or result is None:
        tail = log.read_text(errors="replace")[-2000:]
        raise TuneError(f"the training process exited with status {code}; the end of {log}:\n{tail}")
    return result


def _registry_path(home: Path) -> Path:
    return home / "models" / "registry.json"


def registered(home: Path) -> dict[str, list[dict[str, Any]]]:
    """Every registered model version, by name, oldest first."""
    try:
        data = json.loads(_registry_path(home).read_text())
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def register(home: Path, spec: TrainSpec, result: dict[str, Any], dataset: DatasetRef) -> dict[str, Any]:
    """Record the result as the next version of `spec.name`; writes `manifest.json` next to the files too."""
    out = Path(spec.out)
    files = {
        kind: {"path": str((out / f).resolve()), "sha256": sha256_file(out / f)} for kind, f in result["files"].items()
    }
    hyper = {k: v for k, v in asdict(spec).items() if k not in ("data", "out", "base", "name", "threads", "merge")}
    entry: dict[str, Any] = {
        "name": spec.name,
        "base": {"path": spec.base, "sha256": sha256_file(Path(spec.base))},
        "dataset": asdict(dataset),
        "hyperparameters": hyper,
        "metrics": {
            k: result.get(k)
            for k in ("steps", "examples", "tokens", "train_seconds", "tokens_per_second", "first_loss", "final_loss")
        },
        "files": files,
        "created_at": time.time(),
    }
    path = _registry_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = registered(home)
    versions = data.setdefault(spec.name, [])
    same = [v for v in versions if v.get("files") == files]
    if same:
        return same[-1]  # the same files registered again (a reused result): the version it already has
    entry["version"] = len(versions) + 1
    versions.append(entry)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
    (out / "manifest.json").write_text(json.dumps(entry, indent=2))
    return entry


def config_snippet(entry: dict[str, Any], alias: str | None = None) -> str:
    """The `[models.ALIAS]` table that serves this version on the embedded engine: the base plus the adapter.

    (A merged GGUF, when written, serves as `path = merged.gguf` alone; see the README for the choice.)
    A base that is the packaged model gets no `path`: the provider then serves its Q8_0 conversion
    (`weights`), the faster file, and the adapter, trained on the same weights, applies to it as well.
    """
    alias = alias or entry["name"]
    files = entry["files"]
    lines = [f'[models."{alias}"]', 'provider = "local"']
    if "adapter" not in files:
        merged = files["merged"]
        lines.append(f'path = "{merged["path"]}"  # version {entry["version"]}, sha256 {merged["sha256"][:16]}')
    else:
        base = entry["base"]["path"]
        if Path(base).resolve() == default_model_path().resolve():
            lines.append('# base: the packaged SmolLM2, served as its Q8_0 conversion (weights = "q8_0")')
        else:
            lines.append(f'path = "{base}"')
        adapter = files["adapter"]
        lines.append(f'lora = "{adapter["path"]}"  # version {entry["version"]}, sha256 {adapter["sha256"][:16]}')
    return "\n".join(lines)
