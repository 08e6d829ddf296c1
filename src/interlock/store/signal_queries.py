"""Traffic signals per key and hour (shadow-agent discovery), for every store (SQL written once, `?` placeholders)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

_COUNTS = ("requests", "with_tools", "with_tool_results", "continued", "tool_call_answers")
_COLUMNS = "key_id, hour, " + ", ".join(_COUNTS) + ", framework"


@dataclass(frozen=True, slots=True)
class SignalRow:
    """One key's counts in one hour (`hour`: hours since the epoch)."""

    key_id: str
    hour: int
    requests: int = 0
    with_tools: int = 0
    with_tool_results: int = 0
    continued: int = 0
    tool_call_answers: int = 0
    framework: str = ""


class SignalStore(Protocol):
    """What shadow-agent discovery needs from a store."""

    async def add_traffic_signals(self, rows: list[SignalRow]) -> None: ...
    async def traffic_signals(self, since_hour: int) -> list[SignalRow]: ...
    async def adopt_key(self, key_id: str, agent_id: str) -> bool: ...
    async def prune_traffic_signals(self, before_hour: int) -> int: ...


class SignalQueries:
    """Mixed into a store, which provides `_query` and `_execute` taking `?` placeholders."""

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        raise NotImplementedError

    def _add_signals(self, rows: list[SignalRow]) -> None:
        adds = ", ".join(f"{c} = traffic_signals.{c} + excluded.{c}" for c in _COUNTS)
        keep = (
            "framework = CASE WHEN excluded.framework <> '' THEN excluded.framework ELSE traffic_signals.framework END"
        )
        sql = (
            f"INSERT INTO traffic_signals ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT (key_id, hour) DO UPDATE SET {adds}, {keep}"
        )
        for r in rows:
            self._execute(
                sql,
                (r.key_id, r.hour, r.requests, r.with_tools, r.with_tool_results, r.continued, r.tool_call_answers,
                 r.framework[:64]),
            )  # fmt: skip

    async def add_traffic_signals(self, rows: list[SignalRow]) -> None:
        """Add each row's counts to what the store holds for its key and hour (every replica adds its own)."""
        if rows:
            await asyncio.to_thread(self._add_signals, rows)

    async def traffic_signals(self, since_hour: int) -> list[SignalRow]:
        """Every key's rows from `since_hour` on, oldest first."""
        rows = await asyncio.to_thread(
            self._query, f"SELECT {_COLUMNS} FROM traffic_signals WHERE hour >= ? ORDER BY hour", (since_hour,)
        )
        return [
            SignalRow(str(k), int(h), int(n), int(t), int(tr), int(c), int(a), str(fw))
            for k, h, n, t, tr, c, a, fw in rows
        ]

    async def adopt_key(self, key_id: str, agent_id: str) -> bool:
        """Make an existing, unrevoked key an agent's key (shadow-agent registration); False if none changed."""
        n = await asyncio.to_thread(
            self._execute,
            "UPDATE keys SET agent_id = ? WHERE id = ? AND agent_id IS NULL AND revoked_at IS NULL",
            (agent_id, key_id),
        )
        return n > 0

    async def prune_traffic_signals(self, before_hour: int) -> int:
        """Drop rows older than `before_hour`; how many went."""
        return await asyncio.to_thread(self._execute, "DELETE FROM traffic_signals WHERE hour < ?", (before_hour,))
