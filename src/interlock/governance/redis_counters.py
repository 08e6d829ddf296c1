"""The counters in Redis, shared by every replica: each operation is one Lua script, so atomic.

Keys (one Redis, or a primary with replicas; Redis Cluster is not supported because a script's
buckets may live in different slots):
    <bucket>          hash {spent, reserved}
    <bucket>:amt      hash request_id -> reserved amount
    <bucket>:res      sorted set request_id by expiry time
    <window>:<minute> integer count, expires after two minutes
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as redis

from interlock.governance.counters import WINDOW_S, Bucket, CountersUnavailable, Grant, Missing, Window

_RESERVE = """
local rid, amount, minimum = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl, now = tonumber(ARGV[4]), tonumber(ARGV[5])
local missing = {}
for _, key in ipairs(KEYS) do
  if redis.call('HEXISTS', key, 'spent') == 0 then table.insert(missing, key) end
end
if #missing > 0 then return {-1, 0, '', unpack(missing)} end
local grant, tight = amount, ''
for i, key in ipairs(KEYS) do
  local expired = redis.call('ZRANGEBYSCORE', key .. ':res', '-inf', now)
  for _, r in ipairs(expired) do
    local a = tonumber(redis.call('HGET', key .. ':amt', r) or '0')
    redis.call('HINCRBY', key, 'reserved', -a)
    redis.call('HDEL', key .. ':amt', r)
  end
  redis.call('ZREMRANGEBYSCORE', key .. ':res', '-inf', now)
  local left = tonumber(ARGV[5 + i]) - tonumber(redis.call('HGET', key, 'spent'))
             - tonumber(redis.call('HGET', key, 'reserved') or '0')
  if left < grant then grant, tight = left, key end
end
if grant < minimum or grant <= 0 then return {0, math.max(grant, 0), tight} end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'reserved', grant)
  redis.call('HSET', key .. ':amt', rid, grant)
  redis.call('ZADD', key .. ':res', now + ttl, rid)
end
return {1, grant, tight}
"""

_SETTLE = """
local rid, actual = ARGV[1], tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  local a = redis.call('HGET', key .. ':amt', rid)
  if a then
    redis.call('HINCRBY', key, 'reserved', -tonumber(a))
    redis.call('HDEL', key .. ':amt', rid)
    redis.call('ZREM', key .. ':res', rid)
  end
  -- A bucket whose keys vanished (a restart without persistence, an eviction) is not recreated with this
  -- one cost: the next reservation finds it missing and re-seeds it from the ledger.
  if redis.call('HEXISTS', key, 'spent') == 1 then redis.call('HINCRBY', key, 'spent', actual) end
end
return 1
"""

# KEYS: the log (a sorted set of entry ids by time) and its costs (a hash). ARGV: limit, cost, now, window, id.
_WINDOW = """
local limit, cost, now, window, id = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window)
for i = 1, #old, 1000 do
  redis.call('HDEL', KEYS[2], unpack(old, i, math.min(i + 999, #old)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local ids = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local total, costs = 0, {}
for i = 1, #ids, 2 do
  local c = tonumber(redis.call('HGET', KEYS[2], ids[i]) or '0')
  total = total + c
  costs[#costs + 1] = {tonumber(ids[i + 1]), c}
end
if total + cost > limit then
  local wait, left = window, total
  if cost <= limit then
    for _, e in ipairs(costs) do
      left = left - e[2]
      if left + cost <= limit then wait = math.max(0, e[1] + window - now) break end
    end
  end
  return {0, math.max(0, limit - total), tostring(wait)}
end
redis.call('ZADD', KEYS[1], now, id)
redis.call('HSET', KEYS[2], id, cost)
local ttl = math.ceil(window * 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
local first = costs[1] and costs[1][1] or now
return {1, math.max(0, limit - total - cost), tostring(first + window - now)}
"""

# KEYS: the leases (a sorted set of lease ids by expiry). ARGV: limit, lease, now, ttl.
_ACQUIRE = """
local limit, lease, now, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= limit then return -1 end
redis.call('ZADD', KEYS[1], now + ttl, lease)
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000))
return held + 1
"""

# KEYS: the bucket. ARGV: the floor. Returns the spent before, or -1 when the bucket does not exist.
_RAISE = """
if redis.call('HEXISTS', KEYS[1], 'spent') == 0 then return -1 end
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent'))
if spent < tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'spent', ARGV[1]) end
return spent
"""

# KEYS: the log's costs. ARGV: id, delta.
_ADJUST = """
local c = redis.call('HGET', KEYS[1], ARGV[1])
if c then redis.call('HSET', KEYS[1], ARGV[1], math.max(0, tonumber(c) + tonumber(ARGV[2]))) end
return 1
"""


P = ParamSpec("P")
R = TypeVar("R")
TIMEOUT_S = 2.0  # a Redis that does not answer within this is treated as down


def _guarded(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Redis failures (refused, reset, timed out, a script error) become `CountersUnavailable`."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            raise CountersUnavailable(f"{type(exc).__name__}: {exc}") from exc

    return call


class RedisCounters:
    """Budget and rate-limit counters in Redis."""

    def __init__(self, url: str, prefix: str = "interlock:", window_s: float = WINDOW_S) -> None:
        self._redis: redis.Redis = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
        self._window_s = window_s
        self._prefix = prefix
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)
        self._window = self._redis.register_script(_WINDOW)
        self._adjust = self._redis.register_script(_ADJUST)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._raise = self._redis.register_script(_RAISE)

    def _k(self, name: str) -> str:
        return self._prefix + name

    async def ping(self) -> None:
        """Fail now if Redis is unreachable."""
        await self._redis.ping()

    @_guarded
    async def reserve(
        self, request_id: str, buckets: list[Bucket], amount: int, minimum: int, ttl_s: int
    ) -> Grant | Missing:
        """Grant min(amount, least left) in every bucket, or nothing if that is below `minimum`."""
        keys = [self._k(b.name) for b in buckets]
        args: list[Any] = [request_id, amount, minimum, ttl_s, time.time(), *(b.limit for b in buckets)]
        status, grant, tight, *missing = await self._reserve(keys=keys, args=args)
        if int(status) == -1:
            return Missing(tuple(m.decode().removeprefix(self._prefix) for m in missing))
        tight_name = tight.decode().removeprefix(self._prefix) if isinstance(tight, bytes) else ""
        return Grant(int(grant) if int(status) == 1 else 0, int(grant), tight_name)

    @_guarded
    async def settle(self, request_id: str, buckets: list[Bucket], actual: int) -> None:
        """Release the reservation and add the actual cost."""
        await self._settle(keys=[self._k(b.name) for b in buckets], args=[request_id, actual])

    @_guarded
    async def seed(self, name: str, spent: int) -> None:
        """Start a bucket at `spent` unless another replica already did."""
        await self._redis.hsetnx(self._k(name), "spent", spent)

    @_guarded
    async def spent(self, name: str) -> tuple[int, int]:
        """(spent, reserved) of a bucket."""
        values = await self._redis.hmget(self._k(name), ["spent", "reserved"])
        return int(values[0] or 0), int(values[1] or 0)

    @_guarded
    async def window(
        self, name: str, limit: int, cost: int, now: float | None = None, *, entry: str | None = None
    ) -> Window:
        """Admit `cost` if the last `window_s` seconds plus it stay within `limit` (one script: atomic)."""
        now = time.time() if now is None else now
        keys = [self._k(f"rl:{name}"), self._k(f"rl:{name}:cost")]
        args: list[Any] = [limit, cost, now, self._window_s, entry or uuid.uuid4().hex]
        allowed, remaining, wait = await self._window(keys=keys, args=args)
        return Window(bool(int(allowed)), limit, int(remaining), float(wait))

    @_guarded
    async def adjust_window(self, name: str, delta: int, now: float | None = None, *, entry: str | None = None) -> None:
        """Correct an entry's cost (estimated tokens -> actual tokens); it keeps its time."""
        if entry is None:
            newest: list[Any] = await self._redis.zrange(self._k(f"rl:{name}"), -1, -1)
            if not newest:
                return
            entry = bytes(newest[0]).decode()
        await self._adjust(keys=[self._k(f"rl:{name}:cost")], args=[entry, delta])

    @_guarded
    async def acquire(self, name: str, limit: int, lease: str, ttl_s: int, now: float | None = None) -> int | None:
        """Hold one of `limit` slots, shared by every replica (expires after `ttl_s` if never released)."""
        now = time.time() if now is None else now
        held = int(await self._acquire(keys=[self._k(f"cc:{name}")], args=[limit, lease, now, ttl_s]))
        return None if held < 0 else held

    @_guarded
    async def release(self, name: str, lease: str) -> None:
        """Give the slot back."""
        await self._redis.zrem(self._k(f"cc:{name}"), lease)

    @_guarded
    async def raise_spent(self, name: str, floor: int) -> int | None:
        """Raise `spent` to at least `floor` (never lower it), atomically."""
        before = int(await self._raise(keys=[self._k(name)], args=[floor]))
        return None if before < 0 else before

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
