"""Variant weights, canary rollouts and per-variant statistics, for every store (SQL written once, `?` placeholders)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, Protocol

RolloutState = Literal["running", "promoted", "rolled_back"]
_ROLLOUT = "alias, fingerprint, canary, baseline, state, reason, started_at, decided_at"


@dataclass(frozen=True, slots=True)
class VariantWeight:
    """A weight set at run time for one variant of an alias."""

    alias: str
    variant: str
    weight: float
    updated_at: float
    updated_by: str


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One canary of an alias and what became of it."""

    alias: str
    fingerprint: str
    canary: str
    baseline: str
    state: RolloutState
    reason: str
    started_at: float
    decided_at: float | None = None


@dataclass(frozen=True, slots=True)
class VariantStats:
    """One variant's served requests since a time: how many, how many failed, and a feedback metric's sums."""

    requests: int = 0
    errors: int = 0
    n: int = 0  # requests with a value of the metric
    total: float = 0.0
    squares: float = 0.0


class VariantStore(Protocol):
    """What variants and rollouts need from a store."""

    async def variant_weights(self) -> list[VariantWeight]: ...
    async def set_variant_weights(self, alias: str, weights: dict[str, float], at: float, by: str) -> None: ...
    async def clear_variant_weights(self, alias: str) -> int: ...
    async def start_rollout(self, record: RolloutRecord) -> RolloutRecord: ...
    async def decide_rollout(
        self, alias: str, fingerprint: str, state: RolloutState, reason: str, at: float
    ) -> bool: ...
    async def list_rollouts(self) -> list[RolloutRecord]: ...
    async def variant_stats(self, alias: str, since: float, metric: str | None) -> dict[str, VariantStats]: ...


class VariantQueries:
    """Mixed into a store, which provides `_query` and `_execute` taking `?` placeholders."""

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        raise NotImplementedError

    async def variant_weights(self) -> list[VariantWeight]:
        """Every weight set at run time."""
        rows = await asyncio.to_thread(
            self._query, "SELECT alias, variant, weight, updated_at, updated_by FROM variant_weights ORDER BY alias"
        )
        return [VariantWeight(str(a), str(v), float(w), float(t), str(b)) for a, v, w, t, b in rows]

    def _set_weights(self, alias: str, weights: dict[str, float], at: float, by: str) -> None:
        for variant, weight in weights.items():
            self._execute(
                "INSERT INTO variant_weights (alias, variant, weight, updated_at, updated_by) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (alias, variant) DO UPDATE SET weight = excluded.weight, "
                "updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                (alias, variant, weight, at, by),
            )

    async def set_variant_weights(self, alias: str, weights: dict[str, float], at: float, by: str) -> None:
        """Set the run-time weight of each named variant of `alias`."""
        await asyncio.to_thread(self._set_weights, alias, weights, at, by)

    async def clear_variant_weights(self, alias: str) -> int:
        """Drop `alias`'s run-time weights (the config's apply again); how many went."""
        return await asyncio.to_thread(self._execute, "DELETE FROM variant_weights WHERE alias = ?", (alias,))

    async def start_rollout(self, record: RolloutRecord) -> RolloutRecord:
        """Record a canary unless it is recorded already; the stored record either way."""

        def run() -> RolloutRecord:
            r = record
            self._execute(
                f"INSERT INTO rollouts ({_ROLLOUT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (r.alias, r.fingerprint, r.canary, r.baseline, r.state, r.reason, r.started_at, r.decided_at),
            )
            rows = self._query(
                f"SELECT {_ROLLOUT} FROM rollouts WHERE alias = ? AND fingerprint = ?", (r.alias, r.fingerprint)
            )
            return _rollout(rows[0])

        return await asyncio.to_thread(run)

    async def decide_rollout(self, alias: str, fingerprint: str, state: RolloutState, reason: str, at: float) -> bool:
        """Record the decision on a running canary; False if another replica decided first."""
        n = await asyncio.to_thread(
            self._execute,
            "UPDATE rollouts SET state = ?, reason = ?, decided_at = ? "
            "WHERE alias = ? AND fingerprint = ? AND state = 'running'",
            (state, reason, at, alias, fingerprint),
        )
        return n > 0

    async def list_rollouts(self) -> list[RolloutRecord]:
        """Every canary, newest first."""
        rows = await asyncio.to_thread(self._query, f"SELECT {_ROLLOUT} FROM rollouts ORDER BY started_at DESC")
        return [_rollout(r) for r in rows]

    async def variant_stats(self, alias: str, since: float, metric: str | None) -> dict[str, VariantStats]:
        """Per variant of `alias`, its served requests from `since` (shadow answers excluded): count, server-side
        failures (status 500 and up) and, with `metric`, the count, sum and sum of squares of its feedback values."""

        def run() -> dict[str, VariantStats]:
            counts = self._query(
                "SELECT variant, COUNT(*), SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) FROM usage "
                "WHERE alias = ? AND variant <> '' AND ts >= ? AND endpoint <> 'shadow' GROUP BY variant",
                (alias, since),
            )
            sums: dict[str, tuple[int, float, float]] = {}
            if metric is not None:
                for variant, n, total, squares in self._query(
                    "SELECT u.variant, COUNT(*), SUM(f.value), SUM(f.value * f.value) FROM usage u "
                    "JOIN feedback f ON f.kind = 'request' AND f.subject_id = u.request_id AND f.metric = ? "
                    "WHERE u.alias = ? AND u.variant <> '' AND u.ts >= ? AND u.endpoint <> 'shadow' "
                    "GROUP BY u.variant",
                    (metric, alias, since),
                ):
                    sums[str(variant)] = (int(n), float(total or 0), float(squares or 0))
            return {str(v): VariantStats(int(n), int(e or 0), *sums.get(str(v), (0, 0.0, 0.0))) for v, n, e in counts}

        return await asyncio.to_thread(run)


def _rollout(row: tuple[Any, ...]) -> RolloutRecord:
    alias, fp, canary, baseline, state, reason, started, decided = row
    return RolloutRecord(
        str(alias), str(fp), str(canary), str(baseline), state, str(reason), float(started),
        None if decided is None else float(decided),
    )  # fmt: skip
