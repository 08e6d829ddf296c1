"""Labelled prompts for the router: JSONL `{"prompt", "scores"}` or RouteLLM's CSV layout."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

_TRUE = {"true", "t", "yes", "y"}
_FALSE = {"false", "f", "no", "n"}


class DataError(ValueError):
    """A labelled file that cannot be read."""


@dataclass(frozen=True)
class LabelledSet:
    """Prompts with one quality score in [0, 1] per model; NaN where a model was not scored."""

    prompts: tuple[str, ...]
    models: tuple[str, ...]
    scores: Floats

    def __len__(self) -> int:
        return len(self.prompts)

    def column(self, model: str) -> Floats:
        """The scores of one model."""
        return np.asarray(self.scores[:, self.models.index(model)])

    def subset(self, rows: Sequence[int] | npt.NDArray[np.intp]) -> LabelledSet:
        """The given rows, in that order."""
        idx = np.asarray(rows, dtype=np.intp)
        return LabelledSet(tuple(self.prompts[i] for i in idx), self.models, self.scores[idx])

    def complete_for(self, models: Sequence[str]) -> LabelledSet:
        """Only the rows that score every one of `models`, restricted to those columns."""
        cols = np.array([self.models.index(m) for m in models], dtype=np.intp)
        keep = np.flatnonzero(~np.isnan(self.scores[:, cols]).any(axis=1))
        return LabelledSet(tuple(self.prompts[i] for i in keep), tuple(models), self.scores[np.ix_(keep, cols)])


def parse_score(value: Any) -> float:
    """True/False (any case), 1/0 or a number in [0, 1]; empty is NaN."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if value is None:
        return math.nan
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip().lower()
        if not text:
            return math.nan
        if text in _TRUE:
            return 1.0
        if text in _FALSE:
            return 0.0
        try:
            number = float(text)
        except ValueError:
            raise DataError(f"not a score: {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise DataError(f"score {number} is outside [0, 1]")
    return number


def _read_jsonl(path: Path) -> list[tuple[str, dict[str, float]]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        obj = json.loads(line)
        if (
            not isinstance(obj, dict)
            or not isinstance(obj.get("prompt"), str)
            or not isinstance(obj.get("scores"), dict)
        ):
            raise DataError(f"{path}:{n}: expected {{'prompt': str, 'scores': {{model: score}}}}")
        try:
            rows.append((obj["prompt"], {str(k): parse_score(v) for k, v in obj["scores"].items()}))
        except DataError as exc:
            raise DataError(f"{path}:{n}: {exc}") from None
    return rows


def _read_csv(path: Path) -> list[tuple[str, dict[str, float]]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        if "prompt" not in fields:
            raise DataError(f"{path}: no 'prompt' column")
        models = [c for c in fields if c != "prompt" and c]
        rows = []
        for n, row in enumerate(reader, 2):
            try:
                rows.append((row["prompt"], {m: parse_score(row.get(m)) for m in models}))
            except DataError as exc:
                raise DataError(f"{path}:{n}: {exc}") from None
    return rows


def load_labelled(paths: Iterable[Path], exclude: Iterable[str] = ()) -> LabelledSet:
    """Read labelled files (`.csv` as RouteLLM's layout, anything else as JSONL), dropping excluded prompts."""
    skip = set(exclude)
    rows: list[tuple[str, dict[str, float]]] = []
    for path in paths:
        read = _read_csv if Path(path).suffix.lower() == ".csv" else _read_jsonl
        rows.extend(r for r in read(Path(path)) if r[0] not in skip)
    models: dict[str, None] = {}
    for _, scores in rows:
        models.update(dict.fromkeys(scores))
    names = tuple(models)
    matrix = np.full((len(rows), len(names)), np.nan)
    for i, (_, scores) in enumerate(rows):
        for j, m in enumerate(names):
            matrix[i, j] = scores.get(m, math.nan)
    return LabelledSet(tuple(r[0] for r in rows), names, matrix)


def load_prompts(path: Path) -> list[str]:
    """Prompts from JSONL (objects with 'prompt', or bare strings) or a CSV with a 'prompt' column."""
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            return [row["prompt"] for row in csv.DictReader(f)]
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            out.append(obj if isinstance(obj, str) else str(obj["prompt"]))
    return out


def load_excluded(path: Path) -> set[str]:
    """Every string in a JSONL file of prompts to exclude (RouteLLM's `eval_prompt` and `train_prompt` included)."""
    out: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        if isinstance(obj, str):
            out.add(obj)
        elif isinstance(obj, dict):
            out.update(v for v in obj.values() if isinstance(v, str))
    return out
