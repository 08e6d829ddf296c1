"""Labelled prompts for the router: JSONL rows or RouteLLM's CSV layout.

A JSONL row names its text as `"prompt": str` or as `"messages": [{"role", "content"}, ...]` (read
through `prompt.conversation_text`), and its labels either as `"scores": {model: score}` or as one
outcome, `"model": str, "score": score` (what a ledger or feedback export gives: one row per answer;
rows of the same text are merged, repeated outcomes of one model averaged). An optional `"group"`
(a subject, a tenant, a source) lets training leave whole groups out of its cross-validation.
"""

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

from interlock.routing.router.prompt import conversation_text

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
    groups: tuple[str, ...] | None = None  # one label per prompt, when the rows carry one

    def __len__(self) -> int:
        return len(self.prompts)

    def column(self, model: str) -> Floats:
        """The scores of one model."""
        return np.asarray(self.scores[:, self.models.index(model)])

    def subset(self, rows: Sequence[int] | npt.NDArray[np.intp]) -> LabelledSet:
        """The given rows, in that order."""
        idx = np.asarray(rows, dtype=np.intp)
        groups = None if self.groups is None else tuple(self.groups[i] for i in idx)
        return LabelledSet(tuple(self.prompts[i] for i in idx), self.models, self.scores[idx], groups)

    def complete_for(self, models: Sequence[str]) -> LabelledSet:
        """Only the rows that score every one of `models`, restricted to those columns."""
        cols = np.array([self.models.index(m) for m in models], dtype=np.intp)
        keep = np.flatnonzero(~np.isnan(self.scores[:, cols]).any(axis=1))
        groups = None if self.groups is None else tuple(self.groups[i] for i in keep)
        return LabelledSet(tuple(self.prompts[i] for i in keep), tuple(models), self.scores[np.ix_(keep, cols)], groups)


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


_ROW = (
    "expected {'prompt': str} or {'messages': [{'role', 'content'}, ...]}, with {'scores': {model: score}} "
    "or {'model': str, 'score': score}"
)
Row = tuple[str, dict[str, float], str | None]


def message_text(content: Any) -> str:
    """The text of a chat message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def row_text(obj: dict[str, Any]) -> str | None:
    """The text the router reads of a row: its prompt, or its conversation; None if it has neither."""
    if isinstance(obj.get("prompt"), str):
        return str(obj["prompt"])
    messages = obj.get("messages")
    if isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
        return conversation_text([(str(m.get("role", "user")), message_text(m.get("content"))) for m in messages])
    return None


def _read_jsonl(path: Path) -> list[Row]:
    rows: list[Row] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n}: not JSON: {exc}") from None
        text = row_text(obj) if isinstance(obj, dict) else None
        if text is None:
            raise DataError(f"{path}:{n}: {_ROW}")
        group = obj.get("group")
        try:
            if isinstance(obj.get("scores"), dict):
                scores = {str(k): parse_score(v) for k, v in obj["scores"].items()}
            elif isinstance(obj.get("model"), str) and "score" in obj:
                scores = {obj["model"]: parse_score(obj["score"])}
            else:
                raise DataError(_ROW)
        except DataError as exc:
            raise DataError(f"{path}:{n}: {exc}") from None
        rows.append((text, scores, None if group is None else str(group)))
    return rows


def _merge(rows: list[Row]) -> list[Row]:
    """One row per text: each model's outcomes averaged (NaN ignored); the first group seen."""
    sums: dict[str, dict[str, list[float]]] = {}
    groups: dict[str, str | None] = {}
    for text, scores, group in rows:
        cell = sums.setdefault(text, {})
        groups.setdefault(text, group)
        for m, v in scores.items():
            acc = cell.setdefault(m, [0.0, 0.0])
            if not math.isnan(v):
                acc[0] += v
                acc[1] += 1
    return [
        (t, {m: (a[0] / a[1] if a[1] else math.nan) for m, a in cell.items()}, groups[t]) for t, cell in sums.items()
    ]


def _read_csv(path: Path) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        if "prompt" not in fields:
            raise DataError(f"{path}: no 'prompt' column")
        models = [c for c in fields if c != "prompt" and c]
        rows: list[Row] = []
        for n, row in enumerate(reader, 2):
            try:
                rows.append((row["prompt"], {m: parse_score(row.get(m)) for m in models}, None))
            except DataError as exc:
                raise DataError(f"{path}:{n}: {exc}") from None
    return rows


def load_labelled(paths: Iterable[Path], exclude: Iterable[str] = ()) -> LabelledSet:
    """Read labelled files (`.csv` as RouteLLM's layout, anything else as JSONL), dropping excluded prompts.

    CSV rows are kept one per line (RouteLLM's files repeat a few prompts); JSONL rows of the same text are
    merged (see the module docstring).
    """
    skip = set(exclude)
    rows: list[Row] = []
    for path in paths:
        if Path(path).suffix.lower() == ".csv":
            rows.extend(r for r in _read_csv(Path(path)) if r[0] not in skip)
        else:
            rows.extend(r for r in _merge(_read_jsonl(Path(path))) if r[0] not in skip)
    models: dict[str, None] = {}
    for _, scores, _ in rows:
        models.update(dict.fromkeys(scores))
    names = tuple(models)
    matrix = np.full((len(rows), len(names)), np.nan)
    for i, (_, scores, _) in enumerate(rows):
        for j, m in enumerate(names):
            matrix[i, j] = scores.get(m, math.nan)
    groups = tuple(g or "" for _, _, g in rows) if any(g is not None for _, _, g in rows) else None
    return LabelledSet(tuple(r[0] for r in rows), names, matrix, groups)


def load_prompts(path: Path) -> list[str]:
    """Texts from JSONL (bare strings, or objects with 'prompt' or 'messages') or a CSV with a 'prompt' column."""
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            return [row["prompt"] for row in csv.DictReader(f)]
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: not JSON: {exc}") from None
            text = obj if isinstance(obj, str) else row_text(obj) if isinstance(obj, dict) else None
            if text is None:
                raise DataError(f"{path}:{n}: expected a string, {{'prompt': str}} or {{'messages': [...]}}")
            out.append(text)
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
