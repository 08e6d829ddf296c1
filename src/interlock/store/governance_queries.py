"""Queries for keys, the governance tables (orgs, teams, budgets, rate limits), ledger reads and spend
reports, for every store.

The SQL is written once, with `?` placeholders; each store supplies the few dialect pieces (`Dialect`) and
runs the statements through its own `_query` / `_execute`. Results match row for row across stores (the
spend-parity test runs the same rows through SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from interlock.store.records import (
    KEY_COLUMNS,
    USAGE_COLUMNS,
    BudgetRecord,
    DuplicateError,
    KeyRecord,
    OrgRecord,
    Period,
    RateLimitRecord,
    Scope,
    SpendGroup,
    SpendRow,
    TeamRecord,
    UsageRecord,
)

_GROUP_EXPR = {
    "org": "coalesce(u.org_id, '-') || '|' || coalesce(o.name, '')",
    "team": "coalesce(u.team_id, '-') || '|' || coalesce(t.name, '')",
    "key": "coalesce(u.key_id, '-') || '|' || coalesce(k.name, '')",
    "model": "u.alias",
    "endpoint": "u.endpoint",
}


@dataclass(frozen=True)
class Dialect:
    """What differs between the stores' SQL."""

    day: str  # the UTC day of `u.ts` as YYYY-MM-DD
    minute: str  # the minute index of `ts`, truncated
    collate: str  # appended to ORDER BY terms so ties sort by bytes everywhere
    duplicate: tuple[type[Exception], ...]  # what a unique violation raises


_SCOPE_COLUMN = {"org": "org_id", "team": "team_id", "key": "key_id", "model": "alias"}


class GovernanceQueries:
    """Mixed into a store, which sets `dialect` and provides `_query` and `_execute` taking `?` placeholders."""

    dialect: Dialect

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        raise NotImplementedError

    async def usage_rows(self, limit: int = 1000) -> list[UsageRecord]:
        """The newest ledger rows, newest first."""
        rows = await asyncio.to_thread(
            self._query, f"SELECT {USAGE_COLUMNS} FROM usage ORDER BY ts DESC LIMIT ?", (limit,)
        )
        return [UsageRecord.from_row(r) for r in rows]

    # keys ------------------------------------------------------------------------------------

    async def insert_key(self, key: KeyRecord) -> None:
        """Store a new key."""
        await asyncio.to_thread(
            self._execute,
            f"INSERT INTO keys ({KEY_COLUMNS}) VALUES ({', '.join('?' * (KEY_COLUMNS.count(',') + 1))})",
            key.to_row(),
        )

    async def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        rows = await asyncio.to_thread(self._query, f"SELECT {KEY_COLUMNS} FROM keys ORDER BY created_at")
        return [KeyRecord.from_row(r) for r in rows]

    async def key_by_hash(self, hash_: str) -> KeyRecord | None:
        """The key with this hash, if any."""
        rows = await asyncio.to_thread(self._query, f"SELECT {KEY_COLUMNS} FROM keys WHERE hash = ?", (hash_,))
        return KeyRecord.from_row(rows[0]) if rows else None

    async def revoke_key(self, key_id: str, at: float) -> bool:
        """Mark a key revoked; False if there is no such key or it was already revoked."""
        n = await asyncio.to_thread(
            self._execute, "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, key_id)
        )
        return n > 0

    async def suspend_key(self, key_id: str, at: float | None, reason: str = "") -> bool:
        """Suspend a key (at = None lifts the suspension); False if there is no such key."""
        n = await asyncio.to_thread(
            self._execute, "UPDATE keys SET suspended_at = ?, suspended_reason = ? WHERE id = ?", (at, reason, key_id)
        )
        return n > 0

    # governance ------------------------------------------------------------------------------

    async def spend(
        self, group: SpendGroup, since: float | None = None, endpoints: Sequence[str] = ()
    ) -> list[SpendRow]:
        """Spend grouped by org, team, key, model, endpoint or day since `since` (epoch seconds), largest first;
        `endpoints` (when given) keeps only the rows of those endpoints."""
        return await self._spend_rows(group, since, endpoints=endpoints)

    async def key_usage(self, key_id: str | None, since: float | None = None) -> list[SpendRow]:
        """One key's spend per model alias since `since`, largest first; `key_id` None: the admin key's requests."""
        return await self._spend_rows("model", since, key=key_id or "")

    async def _spend_rows(
        self, group: SpendGroup, since: float | None, key: str | None = None, endpoints: Sequence[str] = ()
    ) -> list[SpendRow]:
        """The spend report's one query; `key` narrows it to one key's rows ("" for rows without a key),
        `endpoints` to the rows of those endpoints."""
        expr = self.dialect.day if group == "day" else _GROUP_EXPR[group]
        where = "u.ts >= ?"
        params: list[object] = [since or 0.0]
        if key == "":
            where += " AND u.key_id IS NULL"
        elif key is not None:
            where += " AND u.key_id = ?"  # the (key_id, ts) index serves it
            params.append(key)
        if endpoints:
            where += f" AND u.endpoint IN ({', '.join('?' * len(endpoints))})"
            params.extend(endpoints)
        sql = (
            f"SELECT {expr} AS g, count(*), sum(prompt_tokens), sum(completion_tokens), "
            "sum(cost_micros), sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END), sum(reference_cost_micros) "
            "FROM usage u LEFT JOIN keys k ON k.id = u.key_id LEFT JOIN teams t ON t.id = u.team_id "
            f"LEFT JOIN orgs o ON o.id = u.org_id WHERE {where} "
            f"GROUP BY g ORDER BY 5 DESC, ({expr}){self.dialect.collate}"
        )
        rows = await asyncio.to_thread(self._query, sql, tuple(params))
        out = []
        for g, n, pt, ct, cost, errors, ref in rows:
            label, extra = str(g), {}
            if group in ("org", "team", "key"):
                ident, _, name = label.partition("|")
                label, extra = ident, {"name": name}
            out.append(
                SpendRow(
                    label, int(n), int(pt or 0), int(ct or 0), int(cost or 0), int(errors or 0), extra, int(ref or 0)
                )
            )
        return out

    async def spent_since(self, scope: Scope, scope_id: str, since: float) -> int:
        """Micro-dollars spent by one org, team, key or model since `since` (for seeding budget counters)."""
        sql = f"SELECT coalesce(sum(cost_micros), 0) FROM usage WHERE {_SCOPE_COLUMN[scope]} = ? AND ts >= ?"
        rows = await asyncio.to_thread(self._query, sql, (scope_id, since))
        return int(rows[0][0])

    async def key_spend_by_minute(self, since: float) -> list[tuple[str, int, int]]:
        """(key id, minute index, micro-dollars) since `since`, for spend-velocity alerts."""
        sql = (
            f"SELECT key_id, {self.dialect.minute} AS m, sum(cost_micros) FROM usage "
            "WHERE ts >= ? AND key_id IS NOT NULL GROUP BY key_id, m"
        )
        return [(str(k), int(m), int(c)) for k, m, c in await asyncio.to_thread(self._query, sql, (since,))]

    # hierarchy ----------------------------------------------------------------------------

    async def insert_org(self, org: OrgRecord) -> None:
        """Store a new organisation; DuplicateError if the name is taken."""
        try:
            await asyncio.to_thread(
                self._execute,
                "INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)",
                (org.id, org.name, org.created_at),
            )
        except self.dialect.duplicate as exc:
            raise DuplicateError(f"an organisation named '{org.name}' exists") from exc

    async def list_orgs(self) -> list[OrgRecord]:
        """Every organisation."""
        rows = await asyncio.to_thread(self._query, "SELECT id, name, created_at FROM orgs ORDER BY created_at")
        return [OrgRecord(str(i), str(n), float(c)) for i, n, c in rows]

    async def insert_team(self, team: TeamRecord) -> None:
        """Store a new team; DuplicateError if its organisation has a team of that name."""
        try:
            await asyncio.to_thread(
                self._execute,
                "INSERT INTO teams (id, org_id, name, created_at) VALUES (?, ?, ?, ?)",
                (team.id, team.org_id, team.name, team.created_at),
            )
        except self.dialect.duplicate as exc:
            raise DuplicateError(f"organisation '{team.org_id}' already has a team '{team.name}'") from exc

    async def list_teams(self) -> list[TeamRecord]:
        """Every team."""
        rows = await asyncio.to_thread(
            self._query, "SELECT id, org_id, name, created_at FROM teams ORDER BY created_at"
        )
        return [TeamRecord(str(i), str(o), str(n), float(c)) for i, o, n, c in rows]

    # budgets and rate limits --------------------------------------------------------------

    async def upsert_budget(self, b: BudgetRecord) -> None:
        """Create or change a budget."""
        await asyncio.to_thread(
            self._execute,
            "INSERT INTO budgets (scope, scope_id, period, limit_micros, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (scope, scope_id, period) "
            "DO UPDATE SET limit_micros = excluded.limit_micros, updated_at = excluded.updated_at",
            (b.scope, b.scope_id, b.period, b.limit_micros, b.updated_at),
        )

    async def delete_budget(self, scope: Scope, scope_id: str, period: Period) -> bool:
        """Remove a budget; False if there was none."""
        n = await asyncio.to_thread(
            self._execute,
            "DELETE FROM budgets WHERE scope = ? AND scope_id = ? AND period = ?",
            (scope, scope_id, period),
        )
        return n > 0

    async def list_budgets(self) -> list[BudgetRecord]:
        """Every budget."""
        c = self.dialect.collate
        rows = await asyncio.to_thread(
            self._query,
            "SELECT scope, scope_id, period, limit_micros, updated_at FROM budgets "
            f"ORDER BY scope{c}, scope_id{c}, period{c}",
        )
        return [BudgetRecord(s, str(i), p, int(limit), float(u)) for s, i, p, limit, u in rows]

    async def upsert_rate_limit(self, r: RateLimitRecord) -> None:
        """Create or change a rate limit."""
        await asyncio.to_thread(
            self._execute,
            "INSERT INTO rate_limits (scope, scope_id, rpm, tpm, updated_at, max_concurrent) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (scope, scope_id) DO UPDATE SET rpm = excluded.rpm, tpm = excluded.tpm, "
            "updated_at = excluded.updated_at, max_concurrent = excluded.max_concurrent",
            (r.scope, r.scope_id, r.rpm, r.tpm, r.updated_at, r.max_concurrent),
        )

    async def delete_rate_limit(self, scope: Scope, scope_id: str) -> bool:
        """Remove a rate limit; False if there was none."""
        n = await asyncio.to_thread(
            self._execute, "DELETE FROM rate_limits WHERE scope = ? AND scope_id = ?", (scope, scope_id)
        )
        return n > 0

    async def list_rate_limits(self) -> list[RateLimitRecord]:
        """Every rate limit."""
        c = self.dialect.collate
        rows = await asyncio.to_thread(
            self._query,
            "SELECT scope, scope_id, rpm, tpm, updated_at, max_concurrent FROM rate_limits "
            f"ORDER BY scope{c}, scope_id{c}",
        )
        return [RateLimitRecord(s, str(i), rpm, tpm, float(u), mc) for s, i, rpm, tpm, u, mc in rows]
