"""The flywheel's tables (captures, feedback, datasets, evals), for every store (SQL written once, `?` placeholders).

Writes that span several rows (a batch of captures, a dataset version) are ordered so that a crash half-way
leaves nothing a reader can see: a dataset version's rows go in before its header row, and a version is read
through its header only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any, Literal, Protocol

FeedbackKind = Literal["request", "run"]
Split = Literal["train", "eval"]
_ROWS_PER_INSERT = 100  # 21 parameters each: far under either database's limit


@dataclass(frozen=True, slots=True)
class CaptureRecord:
    """One captured request: `request` and `response` are JSON (the text after guardrail redaction)."""

    request_id: str
    ts: float
    key_id: str  # "" for the admin key
    team_id: str
    org_id: str
    agent_id: str
    subject: str  # the end user the request names (`user`), for erasure requests
    run_id: str
    endpoint: str
    alias: str
    deployment: str
    provider: str
    variant: str
    request: str
    response: str
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    latency_ms: float
    prompt_hash: str
    size: int


CAPTURE_COLUMNS = ", ".join(f.name for f in fields(CaptureRecord))
_CAPTURE_ROW = f"({', '.join('?' * len(fields(CaptureRecord)))})"


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """A metric value given on a request or a run (booleans as 0.0 and 1.0)."""

    kind: FeedbackKind
    subject_id: str
    key_id: str  # the key whose request or run it is ("" the admin key's)
    metric: str
    value: float
    comment: str
    demonstration: str
    created_at: float
    created_by: str
    id: int = 0


_FEEDBACK_COLUMNS = "kind, subject_id, key_id, metric, value, comment, demonstration, created_at, created_by"


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    """One immutable version of a dataset; `source` is how it was built (JSON)."""

    name: str
    version: int
    created_at: float
    created_by: str
    source: str
    train_rows: int
    eval_rows: int
    content_hash: str


_DATASET_COLUMNS = ", ".join(f.name for f in fields(DatasetRecord))


@dataclass(frozen=True, slots=True)
class DatasetRow:
    """One example of a dataset version: `example` is `{"messages": [...], "tools"?: [...]}` as JSON."""

    position: int
    split: Split
    example: str
    request_id: str  # "" for an imported example


@dataclass(frozen=True, slots=True)
class EvalRecord:
    """One eval run: `models`, `checks` and `summary` are JSON."""

    id: str
    dataset: str
    version: int
    created_at: float
    created_by: str
    models: str
    checks: str
    items: int
    summary: str


_EVAL_COLUMNS = ", ".join(f.name for f in fields(EvalRecord))


@dataclass(frozen=True, slots=True)
class EvalResult:
    """One model's answer to one eval example, with its score per check (`scores` is JSON)."""

    eval_id: str
    model: str
    position: int
    answer: str
    scores: str
    error: str
    latency_ms: float


_RESULT_COLUMNS = ", ".join(f.name for f in fields(EvalResult))


@dataclass(frozen=True, slots=True)
class Erased:
    """What an erasure request removed."""

    captures: int
    feedback: int
    dataset_rows: int


class FlywheelStore(Protocol):
    """What the flywheel needs from a store."""

    async def insert_captures(self, rows: Sequence[CaptureRecord]) -> None: ...
    async def list_captures(
        self, *, since: float | None = None, key_id: str | None = None, alias: str | None = None, limit: int = 100
    ) -> list[CaptureRecord]: ...
    async def captures_between(
        self, since: float | None, until: float | None, aliases: Sequence[str] = (), variant: str | None = None
    ) -> list[CaptureRecord]: ...
    async def erase_captures(self, *, request_id: str = "", key_id: str = "", subject: str = "") -> Erased: ...
    async def prune_captures(self, before: float, max_bytes: int) -> int: ...
    async def usage_exists(self, kind: FeedbackKind, subject_id: str) -> str | None: ...
    async def insert_feedback(self, r: FeedbackRecord) -> int: ...
    async def list_feedback(self) -> list[FeedbackRecord]: ...
    async def insert_dataset(self, d: DatasetRecord, rows: Sequence[DatasetRow]) -> None: ...
    async def list_datasets(self, name: str | None = None) -> list[DatasetRecord]: ...
    async def dataset_rows(self, name: str, version: int, split: Split | None = None) -> list[DatasetRow]: ...
    async def insert_eval(self, e: EvalRecord, results: Sequence[EvalResult]) -> None: ...
    async def list_evals(self) -> list[EvalRecord]: ...
    async def eval_results(self, eval_id: str) -> list[EvalResult]: ...


class FlywheelQueries:
    """Mixed into a store, which provides `_query` and `_execute` taking `?` placeholders."""

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        raise NotImplementedError

    # captures ----------------------------------------------------------------------------------

    async def insert_captures(self, rows: Sequence[CaptureRecord]) -> None:
        """Store captured requests (a request id already stored is skipped)."""

        def write() -> None:
            for i in range(0, len(rows), _ROWS_PER_INSERT):
                part = rows[i : i + _ROWS_PER_INSERT]
                values = ", ".join([_CAPTURE_ROW] * len(part))
                self._execute(
                    f"INSERT INTO captures ({CAPTURE_COLUMNS}) VALUES {values} ON CONFLICT DO NOTHING",
                    tuple(v for r in part for v in astuple(r)),
                )

        await asyncio.to_thread(write)

    async def list_captures(
        self, *, since: float | None = None, key_id: str | None = None, alias: str | None = None, limit: int = 100
    ) -> list[CaptureRecord]:
        """The newest captures (from `since`, of one key or alias), newest first."""
        where, params = ["ts >= ?"], list[object]([since or 0.0])
        if key_id is not None:
            where.append("key_id = ?")
            params.append(key_id)
        if alias is not None:
            where.append("alias = ?")
            params.append(alias)
        sql = (
            f"SELECT {CAPTURE_COLUMNS} FROM captures WHERE {' AND '.join(where)} "
            "ORDER BY ts DESC, request_id DESC LIMIT ?"
        )
        rows = await asyncio.to_thread(self._query, sql, (*params, limit))
        return [CaptureRecord(*r) for r in rows]

    async def captures_between(
        self, since: float | None, until: float | None, aliases: Sequence[str] = (), variant: str | None = None
    ) -> list[CaptureRecord]:
        """Captures from `since` to before `until` (of these aliases, this variant), oldest first."""
        where, params = ["ts >= ?"], list[object]([since or 0.0])
        if until is not None:
            where.append("ts < ?")
            params.append(until)
        if aliases:
            where.append(f"alias IN ({', '.join('?' * len(aliases))})")
            params.extend(aliases)
        if variant is not None:
            where.append("variant = ?")
            params.append(variant)
        sql = f"SELECT {CAPTURE_COLUMNS} FROM captures WHERE {' AND '.join(where)} ORDER BY ts, request_id"
        rows = await asyncio.to_thread(self._query, sql, tuple(params))
        return [CaptureRecord(*r) for r in rows]

    async def erase_captures(self, *, request_id: str = "", key_id: str = "", subject: str = "") -> Erased:
        """Delete the captures of one request, key or subject, with the feedback on them and the dataset rows
        built from them (a data-protection request reaches every copy)."""
        if sum(bool(x) for x in (request_id, key_id, subject)) != 1:
            raise ValueError("erase by exactly one of request_id, key_id and subject")
        column, value = (
            ("request_id", request_id) if request_id else ("key_id", key_id) if key_id else ("subject", subject)
        )
        covered = f"SELECT request_id FROM captures WHERE {column} = ?"

        def erase() -> Erased:
            rows = self._execute(f"DELETE FROM dataset_rows WHERE request_id IN ({covered})", (value,))
            if request_id:
                rows += self._execute("DELETE FROM dataset_rows WHERE request_id = ?", (request_id,))
            fb = self._execute(f"DELETE FROM feedback WHERE kind = 'request' AND subject_id IN ({covered})", (value,))
            if request_id:
                fb += self._execute("DELETE FROM feedback WHERE kind = 'request' AND subject_id = ?", (request_id,))
            elif key_id:
                fb += self._execute("DELETE FROM feedback WHERE key_id = ?", (key_id,))
            caps = self._execute(f"DELETE FROM captures WHERE {column} = ?", (value,))
            return Erased(caps, fb, rows)

        return await asyncio.to_thread(erase)

    async def prune_captures(self, before: float, max_bytes: int) -> int:
        """Delete captures older than `before`, then the oldest past `max_bytes` in all; how many went."""

        def prune() -> int:
            n = self._execute("DELETE FROM captures WHERE ts < ?", (before,))
            over = (
                "SELECT request_id FROM (SELECT request_id, sum(size) OVER (ORDER BY ts DESC, request_id DESC) "
                "AS total FROM captures) AS newest WHERE total > ?"
            )
            return n + self._execute(f"DELETE FROM captures WHERE request_id IN ({over})", (max_bytes,))

        return await asyncio.to_thread(prune)

    async def usage_exists(self, kind: FeedbackKind, subject_id: str) -> str | None:
        """The key id ("" the admin key) of a ledger row of this request or run, if there is one."""
        if not subject_id:
            return None
        column = "request_id" if kind == "request" else "run_id"
        rows = await asyncio.to_thread(
            self._query, f"SELECT coalesce(key_id, '') FROM usage WHERE {column} = ? LIMIT 1", (subject_id,)
        )
        return str(rows[0][0]) if rows else None

    # feedback ----------------------------------------------------------------------------------

    async def insert_feedback(self, r: FeedbackRecord) -> int:
        """Store feedback; its id."""

        def write() -> int:
            rows = self._query(
                f"INSERT INTO feedback ({_FEEDBACK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    r.kind,
                    r.subject_id,
                    r.key_id,
                    r.metric,
                    r.value,
                    r.comment,
                    r.demonstration,
                    r.created_at,
                    r.created_by,
                ),
            )
            return int(rows[0][0])

        return await asyncio.to_thread(write)

    async def list_feedback(self) -> list[FeedbackRecord]:
        """All feedback, oldest first."""
        rows = await asyncio.to_thread(
            self._query, f"SELECT {_FEEDBACK_COLUMNS}, id FROM feedback ORDER BY created_at, id"
        )
        return [
            FeedbackRecord(k, str(s), str(key), str(m), float(v), str(c), str(d), float(t), str(b), int(i))
            for k, s, key, m, v, c, d, t, b, i in rows
        ]

    # datasets ----------------------------------------------------------------------------------

    async def insert_dataset(self, d: DatasetRecord, rows: Sequence[DatasetRow]) -> None:
        """Store a new dataset version: its rows, then its header (DuplicateError-like failure if it exists)."""

        def write() -> None:
            # rows of an earlier attempt that crashed before its header: invisible, and in the way
            self._execute(
                "DELETE FROM dataset_rows WHERE name = ? AND version = ? AND NOT EXISTS "
                "(SELECT 1 FROM datasets WHERE name = ? AND version = ?)",
                (d.name, d.version, d.name, d.version),
            )
            for i in range(0, len(rows), _ROWS_PER_INSERT):
                part = rows[i : i + _ROWS_PER_INSERT]
                self._execute(
                    "INSERT INTO dataset_rows (name, version, position, split, example, request_id) VALUES "
                    + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(part)),
                    tuple(v for r in part for v in (d.name, d.version, r.position, r.split, r.example, r.request_id)),
                )
            self._execute(f"INSERT INTO datasets ({_DATASET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", astuple(d))

        await asyncio.to_thread(write)

    async def list_datasets(self, name: str | None = None) -> list[DatasetRecord]:
        """Every dataset version (of `name`), by name and version."""
        where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        rows = await asyncio.to_thread(
            self._query, f"SELECT {_DATASET_COLUMNS} FROM datasets {where} ORDER BY name, version", params
        )
        return [
            DatasetRecord(str(n), int(v), float(t), str(b), str(s), int(tr), int(ev), str(h))
            for n, v, t, b, s, tr, ev, h in rows
        ]

    async def dataset_rows(self, name: str, version: int, split: Split | None = None) -> list[DatasetRow]:
        """The rows of one dataset version (of one split), in order."""
        where, params = "name = ? AND version = ?", tuple[object, ...]((name, version))
        if split is not None:
            where, params = where + " AND split = ?", (name, version, split)
        rows = await asyncio.to_thread(
            self._query,
            f"SELECT position, split, example, request_id FROM dataset_rows WHERE {where} ORDER BY position",
            params,
        )
        return [DatasetRow(int(p), s, str(e), str(r)) for p, s, e, r in rows]

    # evals -------------------------------------------------------------------------------------

    async def insert_eval(self, e: EvalRecord, results: Sequence[EvalResult]) -> None:
        """Store an eval run: its results, then its header."""

        def write() -> None:
            for i in range(0, len(results), _ROWS_PER_INSERT):
                part = results[i : i + _ROWS_PER_INSERT]
                self._execute(
                    f"INSERT INTO eval_results ({_RESULT_COLUMNS}) VALUES "
                    + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(part)),
                    tuple(v for r in part for v in astuple(r)),
                )
            self._execute(f"INSERT INTO evals ({_EVAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", astuple(e))

        await asyncio.to_thread(write)

    async def list_evals(self) -> list[EvalRecord]:
        """Every eval run, oldest first."""
        rows = await asyncio.to_thread(self._query, f"SELECT {_EVAL_COLUMNS} FROM evals ORDER BY created_at, id")
        return [EvalRecord(*r) for r in rows]

    async def eval_results(self, eval_id: str) -> list[EvalResult]:
        """One eval run's results, by model and position."""
        rows = await asyncio.to_thread(
            self._query,
            f"SELECT {_RESULT_COLUMNS} FROM eval_results WHERE eval_id = ? ORDER BY model, position",
            (eval_id,),
        )
        return [EvalResult(*r) for r in rows]
