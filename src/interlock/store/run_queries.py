"""Agents' runs on the ledger: a run's rows (to seed its counters) and spend per agent per minute (velocity)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from interlock.store.governance_queries import Dialect


class RunStore(Protocol):
    """What run caps and the per-agent velocity guard read from a store."""

    async def run_rows(
        self, agent_id: str, run_id: str, since: float, limit: int
    ) -> list[tuple[float, int, int, bool]]: ...
    async def agent_spend_by_minute(self, since: float) -> list[tuple[str, int, int]]: ...


class RunQueries:
    """Mixed into a store, which provides `_query` (taking `?` placeholders) and its `dialect`."""

    dialect: Dialect

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def run_rows(
        self, agent_id: str, run_id: str, since: float, limit: int
    ) -> list[tuple[float, int, int, bool]]:
        """The run's rows since `since`, newest first: (ts, cost, tokens, whether it reached a model)."""
        sql = (
            "SELECT ts, cost_micros, prompt_tokens + completion_tokens, deployment FROM usage "
            "WHERE agent_id = ? AND run_id = ? AND ts >= ? ORDER BY ts DESC LIMIT ?"
        )
        rows = await asyncio.to_thread(self._query, sql, (agent_id, run_id, since, limit))
        return [(float(ts), int(c), int(t), bool(d)) for ts, c, t, d in rows]

    async def agent_spend_by_minute(self, since: float) -> list[tuple[str, int, int]]:
        """(agent id, minute index, micro-dollars) since `since`: every key and token of an agent together."""
        sql = (
            f"SELECT agent_id, {self.dialect.minute} AS m, sum(cost_micros) FROM usage "
            "WHERE ts >= ? AND agent_id <> '' GROUP BY agent_id, m"
        )
        return [(str(a), int(m), int(c)) for a, m, c in await asyncio.to_thread(self._query, sql, (since,))]
