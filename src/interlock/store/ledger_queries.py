"""The ledger explorer's reads: filtered, counted and paged in SQL, and agents' runs, for every store.

Filters become a WHERE clause on indexed columns (ts; key_id, ts; team_id, ts), so a filter over a large
ledger reads what matches, not the newest N rows. Pages are keyset pages, newest first: the cursor is the
last row's (ts, request_id), so a page is as cheap at the millionth row as at the first and rows written
meanwhile never shift it. The SQL is written once with `?` placeholders (see `governance_queries`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from interlock.store.governance_queries import Dialect
from interlock.store.records import USAGE_COLUMNS, UsageRecord

StatusClass = Literal["ok", "error"]


@dataclass(frozen=True, slots=True)
class LedgerFilter:
    """Which ledger rows to read; None means any. `key_id` "" selects the admin key's rows (no key).

    `since` is inclusive and `until` exclusive (epoch seconds); `status` is "ok" (< 400), "error" (>= 400)
    or one status code.
    """

    key_id: str | None = None
    team_id: str | None = None
    alias: str | None = None
    status: StatusClass | int | None = None
    since: float | None = None
    until: float | None = None
    run_id: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run (the rows sharing an `x-interlock-run-id`, per agent and key): its steps and what they cost."""

    run_id: str
    agent_id: str
    owner_id: str
    key_id: str | None
    steps: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    first_ts: float
    last_ts: float
    models: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RouteCount:
    """Requests of one UTC day that asked for `alias` and were served by `deployment` (its name: the alias
    it belongs to, `<alias>` or `<alias>#<n>`)."""

    day: str
    alias: str
    deployment: str
    requests: int
    errors: int


class LedgerQueryStore(Protocol):
    """What the ledger explorer needs from a store."""

    async def ledger_search(
        self, where: LedgerFilter, limit: int = 200, before: tuple[float, str] | None = None
    ) -> list[UsageRecord]: ...
    async def ledger_count(self, where: LedgerFilter, cap: int | None = None) -> int: ...
    async def ledger_row(self, request_id: str) -> UsageRecord | None: ...
    async def ledger_runs(self, limit: int = 50, agent_id: str | None = None) -> list[RunSummary]: ...
    async def ledger_routes(self, since: float) -> list[RouteCount]: ...


def _where(f: LedgerFilter) -> tuple[str, list[object]]:
    terms: list[str] = []
    params: list[object] = []
    if f.key_id is not None:
        terms.append("key_id IS NULL" if f.key_id == "" else "key_id = ?")
        params += [] if f.key_id == "" else [f.key_id]
    for column, value in (("team_id", f.team_id), ("alias", f.alias), ("run_id", f.run_id), ("agent_id", f.agent_id)):
        if value is not None:
            terms.append(f"{column} = ?")
            params.append(value)
    if f.status == "ok":
        terms.append("status < 400")
    elif f.status == "error":
        terms.append("status >= 400")
    elif f.status is not None:
        terms.append("status = ?")
        params.append(int(f.status))
    if f.since is not None:
        terms.append("ts >= ?")
        params.append(f.since)
    if f.until is not None:
        terms.append("ts < ?")
        params.append(f.until)
    return " AND ".join(terms) or "1 = 1", params


class LedgerQueries:
    """Mixed into a store, which sets `dialect` and provides `_query` taking `?` placeholders."""

    dialect: Dialect

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def ledger_search(
        self, where: LedgerFilter, limit: int = 200, before: tuple[float, str] | None = None
    ) -> list[UsageRecord]:
        """Up to `limit` rows matching `where`, newest first, strictly older than the row `before` (ts, id)."""
        sql, params = _where(where)
        c = self.dialect.collate
        if before is not None:
            sql += f" AND (ts < ? OR (ts = ? AND request_id{c} < ?))"
            params += [before[0], before[0], before[1]]
        rows = await asyncio.to_thread(
            self._query,
            f"SELECT {USAGE_COLUMNS} FROM usage WHERE {sql} ORDER BY ts DESC, request_id{c} DESC LIMIT ?",
            (*params, limit),
        )
        return [UsageRecord.from_row(r) for r in rows]

    async def ledger_count(self, where: LedgerFilter, cap: int | None = None) -> int:
        """How many rows match `where`; with `cap`, at most `cap + 1` (counting stops there: a count over a
        ledger of millions of rows would read them all on every page view)."""
        sql, params = _where(where)
        if cap is None:
            query, args = f"SELECT count(*) FROM usage WHERE {sql}", tuple(params)
        else:
            query, args = (
                f"SELECT count(*) FROM (SELECT 1 FROM usage WHERE {sql} LIMIT ?) AS capped",
                (*params, cap + 1),
            )
        rows = await asyncio.to_thread(self._query, query, args)
        return int(rows[0][0])

    async def ledger_row(self, request_id: str) -> UsageRecord | None:
        """The row of one request, if the ledger has it."""
        rows = await asyncio.to_thread(
            self._query, f"SELECT {USAGE_COLUMNS} FROM usage WHERE request_id = ?", (request_id,)
        )
        return UsageRecord.from_row(rows[0]) if rows else None

    async def ledger_runs(self, limit: int = 50, agent_id: str | None = None) -> list[RunSummary]:
        """The newest runs (rows with a run id), latest step first, optionally one agent's."""
        where, params = "run_id <> ''", list[object]()
        if agent_id is not None:
            where += " AND agent_id = ?"
            params.append(agent_id)
        # A run id is the caller's; two keys (or agents) using the same one are two runs.
        groups = "run_id, agent_id, owner_id, key_id"
        rows = await asyncio.to_thread(
            self._query,
            f"SELECT {groups}, count(*), sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END), sum(prompt_tokens), "
            f"sum(completion_tokens), sum(cost_micros), min(ts), max(ts) FROM usage WHERE {where} "
            f"GROUP BY {groups} ORDER BY max(ts) DESC LIMIT ?",
            (*params, limit),
        )
        models = await self._run_models(rows)
        return [
            RunSummary(
                str(run), str(agent), str(owner), None if key is None else str(key), int(n), int(err or 0),
                int(pt or 0), int(ct or 0), int(cost or 0), float(first), float(last),
                models.get((str(run), None if key is None else str(key)), ()),
            )
            for run, agent, owner, key, n, err, pt, ct, cost, first, last in rows
        ]  # fmt: skip

    async def _run_models(self, runs: list[tuple[Any, ...]]) -> dict[tuple[str, str | None], tuple[str, ...]]:
        """The model aliases each run used, in one query over the runs just read."""
        if not runs:
            return {}
        ids = sorted({str(r[0]) for r in runs})
        marks = ", ".join("?" * len(ids))
        rows = await asyncio.to_thread(
            self._query,
            f"SELECT DISTINCT run_id, key_id, alias FROM usage WHERE run_id IN ({marks}) ORDER BY alias",
            tuple(ids),
        )
        out: dict[tuple[str, str | None], list[str]] = {}
        for run, key, alias in rows:
            out.setdefault((str(run), None if key is None else str(key)), []).append(str(alias))
        return {k: tuple(v) for k, v in out.items()}

    async def ledger_routes(self, since: float) -> list[RouteCount]:
        """Requests per UTC day, alias asked for and deployment that served them, from `since` on (rows
        refused before a deployment was picked are left out)."""
        rows = await asyncio.to_thread(
            self._query,
            f"SELECT {self.dialect.day}, u.alias, u.deployment, count(*), "
            "sum(CASE WHEN u.status >= 400 THEN 1 ELSE 0 END) FROM usage u WHERE u.ts >= ? AND u.deployment <> '' "
            f"GROUP BY 1, 2, 3 ORDER BY 1, u.alias{self.dialect.collate}, u.deployment{self.dialect.collate}",
            (since,),
        )
        return [RouteCount(str(d), str(a), str(dep), int(n), int(e or 0)) for d, a, dep, n, e in rows]
