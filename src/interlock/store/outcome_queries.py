"""Outcomes (ROI), ledger exports and budget-alert claims, for every store (SQL written once, `?` placeholders).

An outcome names a request (`kind` "request", its ledger row's request id) or a run (`kind` "run", the
`x-interlock-run-id` its ledger rows carry), always within the reporting key's own rows: `key_id` is the
key's id, or "" for the admin key, whose rows have no key id. Its AI cost is the cost of those rows.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from interlock.store.records import USAGE_COLUMNS, UsageRecord

OutcomeKind = Literal["request", "run"]
OutcomeStatus = Literal["completed", "failed"]
_OUTCOME_COLUMNS = "key_id, kind, subject_id, task_type, status, team_id, org_id, created_at, updated_at"
# The rows an outcome covers, as the WHERE clause of a subquery on `usage u` against the outer `outcomes o`.
_COVERED = (
    "coalesce(u.key_id, '') = o.key_id AND "
    "((o.kind = 'request' AND u.request_id = o.subject_id) OR (o.kind = 'run' AND u.run_id = o.subject_id))"
)


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """One reported outcome."""

    key_id: str  # "" for the admin key
    kind: OutcomeKind
    subject_id: str
    task_type: str
    status: OutcomeStatus
    team_id: str | None
    org_id: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class OutcomeCost:
    """Outcomes of one task type, key, team and status, with the cost of the ledger rows they cover."""

    task_type: str
    key_id: str
    key_name: str
    team_id: str
    team_name: str
    status: OutcomeStatus
    outcomes: int
    cost_micros: int
    reference_cost_micros: int


class OutcomeQueries:
    """Mixed into a store, which provides `_query` and `_execute` taking `?` placeholders."""

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        raise NotImplementedError

    async def has_usage(self, key_id: str, kind: OutcomeKind, subject_id: str) -> bool:
        """Whether the key ("" the admin key) has a ledger row for this request, or carrying this run id."""
        if not subject_id:  # "" is every row without a run id, never a run
            return False
        column = "request_id" if kind == "request" else "run_id"
        sql = f"SELECT 1 FROM usage WHERE {column} = ? AND coalesce(key_id, '') = ? LIMIT 1"
        return bool(await asyncio.to_thread(self._query, sql, (subject_id, key_id)))

    async def upsert_outcome(self, r: OutcomeRecord) -> bool:
        """Store an outcome, or replace the status of the same key's outcome of the same subject and task type;
        True when it is new."""

        def write() -> bool:
            n = self._execute(
                f"INSERT INTO outcomes ({_OUTCOME_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    r.key_id,
                    r.kind,
                    r.subject_id,
                    r.task_type,
                    r.status,
                    r.team_id,
                    r.org_id,
                    r.created_at,
                    r.updated_at,
                ),
            )
            if n > 0:
                return True
            self._execute(
                "UPDATE outcomes SET status = ?, updated_at = ? "
                "WHERE key_id = ? AND kind = ? AND subject_id = ? AND task_type = ?",
                (r.status, r.updated_at, r.key_id, r.kind, r.subject_id, r.task_type),
            )
            return False

        return await asyncio.to_thread(write)

    async def list_outcomes(self, since: float | None = None) -> list[OutcomeRecord]:
        """Outcomes reported (or last changed) since `since`, oldest first."""
        rows = await asyncio.to_thread(
            self._query,
            f"SELECT {_OUTCOME_COLUMNS} FROM outcomes WHERE updated_at >= ? ORDER BY updated_at, subject_id",
            (since or 0.0,),
        )
        return [
            OutcomeRecord(str(k), kind, str(s), str(t), st, team, org, float(c), float(u))
            for k, kind, s, t, st, team, org, c, u in rows
        ]

    async def outcome_costs(self, since: float | None = None) -> list[OutcomeCost]:
        """Outcomes since `since` counted per task type, key, team and status, with their rows' cost."""
        sql = (
            "SELECT x.task_type, x.key_id, coalesce(k.name, ''), x.team_id, coalesce(t.name, ''), x.status, "
            "count(*), sum(x.cost), sum(x.ref) FROM ("
            "SELECT o.task_type, o.key_id, coalesce(o.team_id, '') AS team_id, o.status, "
            f"(SELECT coalesce(sum(u.cost_micros), 0) FROM usage u WHERE {_COVERED}) AS cost, "
            f"(SELECT coalesce(sum(u.reference_cost_micros), 0) FROM usage u WHERE {_COVERED}) AS ref "
            "FROM outcomes o WHERE o.updated_at >= ?) x "
            "LEFT JOIN keys k ON k.id = x.key_id LEFT JOIN teams t ON t.id = x.team_id "
            "GROUP BY x.task_type, x.key_id, k.name, x.team_id, t.name, x.status "
            "ORDER BY x.task_type, x.key_id, x.team_id, x.status"
        )
        rows = await asyncio.to_thread(self._query, sql, (since or 0.0,))
        return [
            OutcomeCost(str(tt), str(k), str(kn), str(t), str(tn), st, int(n), int(c or 0), int(r or 0))
            for tt, k, kn, t, tn, st, n, c, r in rows
        ]

    async def usage_page(
        self, since: float | None, after: tuple[float, str] | None = None, limit: int = 1000
    ) -> list[UsageRecord]:
        """Up to `limit` ledger rows from `since` on, oldest first, after the row (ts, request id) `after`:
        an export pages through the ledger without holding it in memory."""
        where, params = "ts >= ?", list[object]([since or 0.0])
        if after is not None:
            where += " AND (ts > ? OR (ts = ? AND request_id > ?))"
            params += [after[0], after[0], after[1]]
        sql = f"SELECT {USAGE_COLUMNS} FROM usage WHERE {where} ORDER BY ts, request_id LIMIT ?"
        rows = await asyncio.to_thread(self._query, sql, (*params, limit))
        return [UsageRecord.from_row(r) for r in rows]

    async def claim_budget_alert(
        self, scope: str, scope_id: str, period: str, period_key: str, threshold: float, at: float
    ) -> bool:
        """Record that this budget's alert at `threshold` in the period `period_key` is sent; False when it was
        already (by this replica or another)."""
        n = await asyncio.to_thread(
            self._execute,
            "INSERT INTO budget_alerts (scope, scope_id, period, period_key, threshold, sent_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (scope, scope_id, period, period_key, threshold, at),
        )
        return n > 0
