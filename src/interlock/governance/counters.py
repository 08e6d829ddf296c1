"""Atomic counters for budgets and rate limits: in this process, or in Redis for several replicas.

Budget buckets hold `spent` and `reserved` micro-dollars for one scope and period (for example team
T's spend on 2026-11-22). `reserve` grants up to the asked amount across several buckets at once,
all or nothing: the grant is the smallest amount left in any bucket, refused if below a minimum.
Each reservation expires after `ttl_s`, so a replica that dies mid-request cannot hold budget
forever. A bucket that has never been seen is *seeded* from the ledger by the caller (`Missing`).

Rate-limit windows are an exact sliding log: each admitted request is an entry (its time, its id and
its cost: 1 request, or its estimated tokens), and a request is admitted only if the entries of the last
`window_s` seconds plus its own cost stay within the limit. So no real 60-second window ever holds more
than the limit, at any alignment (the fixed-window estimate this replaces let a client pacing its
requests across a minute boundary through at up to 1.6x the limit). A token entry is corrected to the
actual count when its request settles (`adjust_window`), keeping its original time.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class Bucket:
    """One budget: its counter name and limit."""

    name: str
    limit: int


class CountersUnavailable(Exception):
    """The shared counters (Redis) cannot be reached or failed; nothing was changed that is known."""


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
    async def window(
        self, name: str, limit: int, cost: int, now: float | None = None, *, entry: str | None = None
    ) -> Window: ...
    async def adjust_window(
        self, name: str, delta: int, now: float | None = None, *, entry: str | None = None
    ) -> None: ...
    async def acquire(self, name: str, limit: int, lease: str, ttl_s: int, now: float | None = None) -> int | None:
        """Hold one of `limit` slots for `lease`: the number now held, or None when all are taken."""
        ...

    async def release(self, name: str, lease: str) -> None: ...
    async def raise_spent(self, name: str, floor: int) -> int | None:
        """Raise a bucket's `spent` to at least `floor`: what it was before, or None if there is no such bucket."""
        ...

    async def close(self) -> None: ...


def free_in(entries: list[tuple[float, int]], total: int, cost: int, limit: int, now: float, window_s: float) -> float:
    """Seconds until `cost` fits: the oldest entries (time, cost) expire one by one."""
    if cost > limit:
        return window_s
    for ts, c in entries:
        total -= c
        if total + cost <= limit:
            return max(0.0, ts + window_s - now)
    return 0.0


@dataclass(slots=True)
class _Entry:
    ts: float
    id: str
    cost: int


class LocalCounters:
    """Counters in this process: correct for one replica (every operation runs without awaiting)."""

    def __init__(self, clock: object = time.time, window_s: float = WINDOW_S) -> None:
        self._clock = clock
        self._window_s = window_s
        self._spent: dict[str, int] = {}
        self._reserved: dict[str, dict[str, tuple[int, float]]] = {}  # name -> request -> (amount, expiry)
        self._held: dict[str, int] = {}  # name -> the sum of its reservations' amounts
        self._next_expiry: dict[str, float] = {}  # name -> the earliest expiry among its reservations
        self._logs: dict[str, deque[_Entry]] = {}  # oldest first
        self._serial = 0
        self._leases: dict[str, dict[str, float]] = {}  # name -> lease -> expiry

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def _live_reserved(self, name: str, now: float) -> int:
        """The bucket's reserved total; expired reservations are dropped first (a scan only when one is due)."""
        if now >= self._next_expiry.get(name, math.inf):
            held = self._reserved[name]
            for rid in [r for r, (_, exp) in held.items() if exp <= now]:
                del held[rid]
            self._held[name] = sum(a for a, _ in held.values())
            self._next_expiry[name] = min((exp for _, exp in held.values()), default=math.inf)
        return self._held.get(name, 0)

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
        expiry = now + ttl_s
        for b in buckets:
            self._drop(b.name, request_id)  # a second reservation under one id replaces the first
            self._reserved.setdefault(b.name, {})[request_id] = (grant, expiry)
            self._held[b.name] = self._held.get(b.name, 0) + grant
            self._next_expiry[b.name] = min(self._next_expiry.get(b.name, math.inf), expiry)
        return Grant(grant, grant, tightest)

    def _drop(self, name: str, request_id: str) -> None:
        held = self._reserved.get(name)
        entry = held.pop(request_id, None) if held else None
        if entry is not None:
            self._held[name] -= entry[0]

    def settle_now(self, request_id: str, buckets: list[Bucket], actual: int) -> None:
        """`settle`, without awaiting (these counters never wait on anything)."""
        for b in buckets:
            self._drop(b.name, request_id)
            if b.name in self._spent:
                self._spent[b.name] += actual

    async def settle(self, request_id: str, buckets: list[Bucket], actual: int) -> None:
        """Release the reservation and add the actual cost (a bucket that is gone is re-seeded later)."""
        self.settle_now(request_id, buckets, actual)

    async def seed(self, name: str, spent: int) -> None:
        """Start a bucket at `spent` unless it already exists."""
        self._spent.setdefault(name, spent)

    async def spent(self, name: str) -> tuple[int, int]:
        """(spent, reserved) of a bucket."""
        return self._spent.get(name, 0), self._live_reserved(name, self._now())

    def _log(self, name: str, now: float) -> deque[_Entry]:
        log = self._logs.setdefault(name, deque())
        while log and log[0].ts <= now - self._window_s:
            log.popleft()
        return log

    async def window(
        self, name: str, limit: int, cost: int, now: float | None = None, *, entry: str | None = None
    ) -> Window:
        """Admit `cost` if the last `window_s` seconds plus it stay within `limit`."""
        now = self._now() if now is None else now
        log = self._log(name, now)
        total = sum(e.cost for e in log)
        if total + cost > limit:
            wait = free_in([(e.ts, e.cost) for e in log], total, cost, limit, now, self._window_s)
            return Window(False, limit, max(0, limit - total), wait)
        self._serial += 1
        log.append(_Entry(now, entry or f"#{self._serial}", cost))
        return Window(True, limit, max(0, limit - total - cost), log[0].ts + self._window_s - now)

    async def adjust_window(self, name: str, delta: int, now: float | None = None, *, entry: str | None = None) -> None:
        """Correct an entry's cost (estimated tokens -> actual tokens); without `entry`, the newest."""
        self.adjust_window_now(name, delta, entry=entry)

    def adjust_window_now(self, name: str, delta: int, *, entry: str | None = None) -> None:
        """`adjust_window`, without awaiting."""
        log = self._logs.get(name)
        if not log:
            return
        target = next((e for e in reversed(log) if e.id == entry), None) if entry else log[-1]
        if target is not None:
            target.cost = max(0, target.cost + delta)

    async def acquire(self, name: str, limit: int, lease: str, ttl_s: int, now: float | None = None) -> int | None:
        """Hold a slot until `release` (or `ttl_s`, for a request whose replica died)."""
        now = self._now() if now is None else now
        held = self._leases.setdefault(name, {})
        for gone in [k for k, exp in held.items() if exp <= now]:
            del held[gone]
        if len(held) >= limit:
            return None
        held[lease] = now + ttl_s
        return len(held)

    async def release(self, name: str, lease: str) -> None:
        """Give the slot back."""
        self.release_now(name, lease)

    def release_now(self, name: str, lease: str) -> None:
        """`release`, without awaiting."""
        self._leases.get(name, {}).pop(lease, None)

    async def raise_spent(self, name: str, floor: int) -> int | None:
        """Raise `spent` to at least `floor` (never lower it)."""
        before = self._spent.get(name)
        if before is not None and before < floor:
            self._spent[name] = floor
        return before

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
