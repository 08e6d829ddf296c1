"""Datasets: versioned sets of examples built from captures (or imported), split train/eval, exported for trainers.

Building (`build`) takes the captures of a time window (of some aliases and a variant), keeps those whose
feedback meets every metric filter (a request's own feedback, else its run's; the latest value of a metric
counts), answers each with its demonstration when one was given and `prefer_demonstrations` is set, and
drops repeated prompts (`examples.prompt_hash`): a repeat with a demonstration beats one without, a newer
one an older one. Each prompt's split is a hash of the seed and the prompt, so the same data and seed give
the same split on every run, and a prompt never moves between splits as a dataset grows.

A version is immutable: `save` writes version N+1 with the hash of its content, or returns the latest
version unchanged when the content is the same as it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from interlock.flywheel.examples import (
    BadExample,
    Example,
    canonical,
    check,
    example_of,
    prompt_hash,
    prompt_of,
    text_of,
)
from interlock.store.flywheel_queries import (
    CaptureRecord,
    DatasetRecord,
    DatasetRow,
    FeedbackRecord,
    FlywheelStore,
    Split,
)

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_NAME = re.compile(NAME_PATTERN)
_FILTER = re.compile(r"^\s*([A-Za-z0-9_.-]{1,64})\s*(>=|<=|!=|==|=|>|<)\s*(\S+)\s*$")
Format = Literal["openai", "axolotl"]
FORMATS: tuple[Format, ...] = ("openai", "axolotl")


class DatasetError(ValueError):
    """A dataset request that cannot be done as asked (the message says what to change)."""


@dataclass(frozen=True, slots=True)
class MetricFilter:
    """`name OP value`: a capture is kept when its latest feedback on `name` satisfies it."""

    name: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> MetricFilter:
        """`accuracy>=0.8`, `thumbs_up=1` (booleans are 0 and 1), ..."""
        m = _FILTER.match(text)
        if m is None:
            raise DatasetError(f"metric filter {text!r}: write NAME>=VALUE (or <=, >, <, =, !=)")
        raw = m[3].lower()
        value = {"true": 1.0, "false": 0.0}.get(raw)
        if value is None:
            try:
                value = float(raw)
            except ValueError:
                raise DatasetError(f"metric filter {text!r}: {m[3]!r} is not a number (or true/false)") from None
        return cls(m[1], "=" if m[2] == "==" else m[2], value)

    def holds(self, value: float | None) -> bool:
        """Whether `value` (None: no feedback on this metric) passes."""
        if value is None:
            return False
        return {
            ">=": value >= self.value,
            "<=": value <= self.value,
            ">": value > self.value,
            "<": value < self.value,
            "=": value == self.value,
            "!=": value != self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"


@dataclass(frozen=True, slots=True)
class BuildSpec:
    """How to build a dataset from captures."""

    name: str
    aliases: tuple[str, ...] = ()
    variant: str | None = None
    since: float | None = None
    until: float | None = None
    metrics: tuple[MetricFilter, ...] = ()
    prefer_demonstrations: bool = False
    eval_fraction: float = 0.2
    seed: int = 0

    def source(self) -> dict[str, Any]:
        """How the version was built, as stored with it."""
        return {
            "from": "captures",
            "aliases": list(self.aliases),
            "variant": self.variant,
            "since": self.since,
            "until": self.until,
            "metrics": [str(m) for m in self.metrics],
            "prefer_demonstrations": self.prefer_demonstrations,
            "eval_fraction": self.eval_fraction,
            "seed": self.seed,
        }


@dataclass(frozen=True, slots=True)
class Saved:
    """The version a build or import wrote (or the identical latest one it found)."""

    dataset: DatasetRecord
    created: bool
    considered: int  # captures or lines looked at
    duplicates: int


def check_name(name: str) -> str:
    """`name` if it is a valid dataset name."""
    if not _NAME.match(name):
        raise DatasetError(f"dataset name {name!r}: use 1-64 letters, digits, '_', '.' or '-'")
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """`NAME` or `NAME@VERSION`."""
    name, at, version = ref.partition("@")
    check_name(name)
    if not at:
        return name, None
    if not (version.isascii() and version.isdigit() and len(version) <= 9) or int(version) < 1:
        raise DatasetError(f"dataset {ref!r}: the version after '@' is a number from 1")
    return name, int(version)


def split_of(key: str, seed: int, eval_fraction: float) -> Split:
    """The split of a prompt: `eval` for a hash-chosen `eval_fraction` of prompts, the same on every run."""
    h = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:15], 16) / 16**15
    return "eval" if h < eval_fraction else "train"


def _latest(feedback: Iterable[FeedbackRecord]) -> tuple[dict[tuple[str, str, str], float], dict[str, str]]:
    """Latest value per (kind, subject, metric), and the latest demonstration per request."""
    values: dict[tuple[str, str, str], float] = {}
    demos: dict[str, str] = {}
    for f in feedback:  # oldest first: later ones overwrite
        values[(f.kind, f.subject_id, f.metric)] = f.value
        if f.demonstration and f.kind == "request":
            demos[f.subject_id] = f.demonstration
    return values, demos


def select(
    spec: BuildSpec, captures: list[CaptureRecord], feedback: list[FeedbackRecord]
) -> tuple[list[tuple[str, Example]], int]:
    """(request id, example) per distinct prompt, oldest first, and how many repeats were dropped."""
    values, demos = _latest(feedback)
    chosen: dict[str, tuple[int, float, str, Example]] = {}  # prompt hash -> (has demo, ts, request id, example)
    passed = 0
    for c in captures:

        def metric(name: str, c: CaptureRecord = c) -> float | None:
            own = values.get(("request", c.request_id, name))
            return own if own is not None or not c.run_id else values.get(("run", c.run_id, name))

        if not all(f.holds(metric(f.name)) for f in spec.metrics):
            continue
        request = orjson.loads(c.request)
        answer = orjson.loads(c.response)
        demo = demos.get(c.request_id) if spec.prefer_demonstrations else None
        if demo is not None:
            answer = {"role": "assistant", "content": demo}
        if not text_of(answer) and not answer.get("tool_calls"):
            continue  # nothing to learn from
        passed += 1
        rank = (1 if demo is not None else 0, c.ts)
        held = chosen.get(c.prompt_hash)
        if held is None or rank >= held[:2]:
            chosen[c.prompt_hash] = (*rank, c.request_id, example_of(request, answer))
    kept = sorted(chosen.items(), key=lambda kv: kv[1][1])
    return [(rid, ex) for _, (_, _, rid, ex) in kept], passed - len(kept)


def rows_of(examples: list[tuple[str, Example]], seed: int, eval_fraction: float) -> list[DatasetRow]:
    """Numbered rows, each with its split."""
    return [
        DatasetRow(i, split_of(prompt_hash(prompt_of(ex)), seed, eval_fraction), canonical(ex), rid)
        for i, (rid, ex) in enumerate(examples)
    ]


def content_hash(rows: list[DatasetRow]) -> str:
    """The hash of a version's content: every example and its split, in order."""
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.split}\n{r.example}\n".encode())
    return h.hexdigest()


async def save(
    store: FlywheelStore, name: str, rows: list[DatasetRow], source: dict[str, Any], actor: str
) -> tuple[DatasetRecord, bool]:
    """Write the next version of `name`, or return the latest when its content is the same."""
    digest = content_hash(rows)
    versions = await store.list_datasets(name)
    if versions and versions[-1].content_hash == digest:
        return versions[-1], False
    record = DatasetRecord(
        name,
        (versions[-1].version + 1) if versions else 1,
        time.time(),
        actor,
        json.dumps(source, sort_keys=True),
        sum(r.split == "train" for r in rows),
        sum(r.split == "eval" for r in rows),
        digest,
    )
    await store.insert_dataset(record, rows)
    return record, True


async def build(store: FlywheelStore, spec: BuildSpec, actor: str) -> Saved:
    """Build and save a dataset version from captures (see the module docstring)."""
    check_name(spec.name)
    if not 0 <= spec.eval_fraction < 1:
        raise DatasetError("--eval-fraction is a share of the examples, from 0 up to (not including) 1")
    captures = await store.captures_between(spec.since, spec.until, spec.aliases, spec.variant)
    examples, duplicates = select(spec, captures, await store.list_feedback())
    if not examples:
        raise DatasetError(
            f"no capture matches ({len(captures)} captures in the window"
            f"{', of ' + ', '.join(spec.aliases) if spec.aliases else ''}); is capture on for that traffic "
            "([flywheel.capture]), and do the metric filters match its feedback?"
        )
    record, created = await save(
        store, spec.name, rows_of(examples, spec.seed, spec.eval_fraction), spec.source(), actor
    )
    return Saved(record, created, len(captures), duplicates)


def parse_jsonl(lines: Iterable[str]) -> list[Example]:
    """The examples of a JSONL file (OpenAI's fine-tuning format); DatasetError names the first bad line."""
    out: list[Example] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(check(orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"line {n}: not JSON ({exc})") from None
        except BadExample as exc:
            raise DatasetError(f"line {n}: {exc}") from None
    if not out:
        raise DatasetError("the file holds no examples")
    return out


async def import_examples(
    store: FlywheelStore,
    name: str,
    examples: list[Example],
    actor: str,
    *,
    eval_fraction: float = 0.2,
    seed: int = 0,
    file: str = "",
) -> Saved:
    """Save imported examples as the next version of `name` (repeated prompts dropped, first kept)."""
    check_name(name)
    seen: dict[str, Example] = {}
    for ex in examples:
        seen.setdefault(prompt_hash(prompt_of(ex)), ex)
    kept = [("", ex) for ex in seen.values()]
    source = {"from": "import", "file": file, "eval_fraction": eval_fraction, "seed": seed}
    record, created = await save(store, name, rows_of(kept, seed, eval_fraction), source, actor)
    return Saved(record, created, len(examples), len(examples) - len(kept))


async def resolve(store: FlywheelStore, ref: str) -> DatasetRecord:
    """The dataset version `NAME[@V]` names (the latest without `@V`)."""
    name, version = parse_ref(ref)
    versions = await store.list_datasets(name)
    if not versions:
        known = sorted({d.name for d in await store.list_datasets()})
        raise DatasetError(f"no dataset {name!r}; datasets: {', '.join(known) or 'none'}")
    if version is None:
        return versions[-1]
    for d in versions:
        if d.version == version:
            return d
    raise DatasetError(
        f"dataset {name!r} has no version {version}; versions: {', '.join(str(d.version) for d in versions)}"
    )


# export ----------------------------------------------------------------------------------------

_OPENAI_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "weight")


def _openai(example: Example) -> Example:
    out: Example = {"messages": [{k: m[k] for k in _OPENAI_KEYS if k in m} for m in example["messages"]]}
    if example.get("tools"):
        out["tools"] = example["tools"]
    return out


def _arguments(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def _axolotl(example: Example) -> Example:
    """axolotl's `type: chat_template` rows: string contents, and tool-call arguments as objects (what
    Hugging Face chat templates render), tools beside the messages (`field_tools: tools`)."""
    messages = []
    for m in example["messages"]:
        msg: dict[str, Any] = {"role": m["role"], "content": text_of(m)}
        if m.get("tool_calls"):
            msg["tool_calls"] = [
                {
                    "type": "function",
                    "function": {
                        "name": c["function"]["name"],
                        "arguments": _arguments(c["function"].get("arguments")),
                    },
                }
                for c in m["tool_calls"]
            ]
        if m.get("tool_call_id"):
            msg["tool_call_id"] = m["tool_call_id"]
        if m.get("name"):
            msg["name"] = m["name"]
        messages.append(msg)
    out: Example = {"messages": messages}
    if example.get("tools"):
        out["tools"] = example["tools"]
    return out


AXOLOTL_CONFIG = """datasets:
  - path: {path}
    type: chat_template
    field_messages: messages
    field_tools: tools
    roles_to_train: ["assistant"]
"""


def export_lines(rows: Iterable[DatasetRow], fmt: Format) -> Iterator[str]:
    """One JSON line per row in `fmt`."""
    convert = _openai if fmt == "openai" else _axolotl
    for r in rows:
        yield orjson.dumps(convert(orjson.loads(r.example))).decode()
