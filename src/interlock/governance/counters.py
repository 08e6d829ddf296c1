"""Atomic counters for budgets and rate limits: in this process, or in Redis for several replicas.

Budget buckets hold `spent` and `reserved` micro-dollars for one scope and period (for example team
T's spend on 2026-11-22). `reserve` grants up to the asked amount across several buckets at once,
all or nothing: the grant is the smallest amount left in any bucket, refused if below a minimum.
Each reservation expires after `ttl_s`, so a replica that dies mid-request cannot hold budget
forever. A bucket that has never been seen is *seeded* from the ledger by the caller (`Missing`).

Rate-limit windows use the sliding-window counter: the previous minute's count weighted by how much
of it still overlaps the last 60 s, plus the current minute's count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class Bucket:
    """One budget: its counter name and limit."""

    name: str
    limit: int


@dataclass(frozen=True, slots=True)
class Missing:
    """The named buckets have no counter yet; seed them from the ledger and try again."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Grant:
    """A reservation: `amount` granted (0 = refused); `left` is what the tightest bucket had."""

    amount: int
    left: int
    tightest: str


@dataclass(frozen=True, slots=True)
class Window:
    """A rate-limit check: whether it passed, the limit, what remains, and seconds until it frees up."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float


class Counters(Protocol):
    """What budgets and rate limits need: atomic multi-bucket reserve and settle, and windows."""

    async def reserve(
        self, request_id: str, buckets: list[Bucket], amount: int, minimum: int, ttl_s: int
    ) -> Grant | Missing: ...
    async def settle(self, request_id: str, buckets: list[Bucket], actual: int) -> None: ...
    async def seed(self, name: str, spent: int) -> None: ...
    async def spent(self, name: str) -> tuple[int, int]: ...
    async def window(self, name: str, limit: int, cost: int, now: float | None = None) -> Window: ...
    async def adjust_window(self, name: str, delta: int, now: float | None = None) -> None: ...
    async def close(self) -> None: ...


def window_state(prev: int, curr: int, now: float, window_s: float = WINDOW_S) -> tuple[float, float]:
    """The sliding-window count, and the fraction of the current window elapsed."""
    elapsed = (now % window_s) / window_s
    return prev * (1 - elapsed) + curr, elapsed


class LocalCounters:
    """Counters in this process: correct for one replica (every operation runs without awaiting)."""

    def __init__(self, clock: object = time.time, window_s: float = WINDOW_S) -> None:
        self._clock = clock
        self._window_s = window_s
        self._spent: dict[str, int] = {}
        self._reserved: dict[str, dict[str, tuple[int, float]]] = {}
        self._windows: dict[str, int] = {}

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def _live_reserved(self, name: str, now: float) -> int:
        held = self._reserved.setdefault(name, {})
        for rid in [r for r, (_, exp) in held.items() if exp <= now]:
            del held[rid]
        return sum(a for a, _ in held.values())

    async def reserve(
        self, request_id: str, buckets: list[Bucket], amount: int, minimum: int, ttl_s: int
    ) -> Grant | Missing:
        """Grant min(amount, least left) in every bucket, or nothing if that is below `minimum`."""
        missing = tuple(b.name for b in buckets if b.name not in self._spent)
        if missing:
            return Missing(missing)
        now = self._now()
        grant, tightest = amount, ""
        for b in buckets:
            left = b.limit - self._spent[b.name] - self._live_reserved(b.name, now)
            if left < grant:
                grant, tightest = left, b.name
        if grant < minimum or grant <= 0:
            return Grant(0, max(grant, 0), tightest)
        for b in buckets:
            self._reserved[b.name][request_id] = (grant, now + ttl_s)
        return Grant(grant, grant, tightest)

    async def settle(self, request_id: str, buckets: list[Bucket], actual: int) -> None:
        """Release the reservation and add the actual cost."""
        for b in buckets:
            self._reserved.get(b.name, {}).pop(request_id, None)
            self._spent[b.name] = self._spent.get(b.name, 0) + actual

    async def seed(self, name: str, spent: int) -> None:
        """Start a bucket at `spent` unless it already exists."""
        self._spent.setdefault(name, spent)

    async def spent(self, name: str) -> tuple[int, int]:
        """(spent, reserved) of a bucket."""
        return self._spent.get(name, 0), self._live_reserved(name, self._now())

    async def window(self, name: str, limit: int, cost: int, now: float | None = None) -> Window:
        """Admit `cost` into the sliding window if it fits."""
        now = self._now() if now is None else now
        index = int(now // self._window_s)
        prev, curr = self._windows.get(f"{name}:{index - 1}", 0), self._windows.get(f"{name}:{index}", 0)
        count, elapsed = window_state(prev, curr, now, self._window_s)
        reset = (1 - elapsed) * self._window_s
        if count + cost > limit:
            return Window(False, limit, max(0, int(limit - count)), reset)
        self._windows[f"{name}:{index}"] = curr + cost
        for key in [k for k in self._windows if k.startswith(f"{name}:") and int(k.rsplit(":", 1)[1]) < index - 1]:
            del self._windows[key]
        return Window(True, limit, max(0, int(limit - count - cost)), reset)

    async def adjust_window(self, name: str, delta: int, now: float | None = None) -> None:
        """Correct the current minute's count (estimated tokens -> actual tokens)."""
        now = self._now() if now is None else now
        key = f"{name}:{int(now // self._window_s)}"
        self._windows[key] = max(0, self._windows.get(key, 0) + delta)

    async def close(self) -> None:
        """Nothing to release."""


def open_counters(redis_url: str, prefix: str = "interlock:", window_s: float = WINDOW_S) -> Counters:
    """Redis counters for a redis:// URL (several replicas), else counters in this process.

    `window_s` is the length of a rate-limit window (60 s: limits are per minute; tests shorten it).
    """
    if redis_url:
        from interlock.governance.redis_counters import RedisCounters

        return RedisCounters(redis_url, prefix, window_s)
    return LocalCounters(window_s=window_s)
