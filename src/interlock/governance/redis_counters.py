"""The counters in Redis, shared by every replica: each operation is one Lua script, so atomic.

Keys (one Redis, or a primary with replicas; Redis Cluster is not supported because a script's
buckets may live in different slots):
    <bucket>          hash {spent, reserved}
    <bucket>:amt      hash request_id -> reserved amount
    <bucket>:res      sorted set request_id by expiry time
    <window>:<minute> integer count, expires after two minutes
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as redis

from interlock.governance.counters import WINDOW_S, Bucket, Grant, Missing, Window

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
  redis.call('HINCRBY', key, 'spent', actual)
end
return 1
"""

_WINDOW = """
local limit, cost, elapsed = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local prev = tonumber(redis.call('GET', KEYS[1]) or '0')
local curr = tonumber(redis.call('GET', KEYS[2]) or '0')
local count = prev * (1 - elapsed) + curr
if count + cost > limit then return {0, math.floor(limit - count)} end
redis.call('INCRBY', KEYS[2], cost)
redis.call('EXPIRE', KEYS[2], math.max(1, math.ceil(2 * tonumber(ARGV[4]))))
return {1, math.floor(limit - count - cost)}
"""


class RedisCounters:
    """Budget and rate-limit counters in Redis."""

    def __init__(self, url: str, prefix: str = "interlock:", window_s: float = WINDOW_S) -> None:
        self._redis: redis.Redis = redis.Redis.from_url(url)
        self._window_s = window_s
        self._prefix = prefix
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)
        self._window = self._redis.register_script(_WINDOW)

    def _k(self, name: str) -> str:
        return self._prefix + name

    async def ping(self) -> None:
        """Fail now if Redis is unreachable."""
        await self._redis.ping()

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

    async def settle(self, request_id: str, buckets: list[Bucket], actual: int) -> None:
        """Release the reservation and add the actual cost."""
        await self._settle(keys=[self._k(b.name) for b in buckets], args=[request_id, actual])

    async def seed(self, name: str, spent: int) -> None:
        """Start a bucket at `spent` unless another replica already did."""
        await self._redis.hsetnx(self._k(name), "spent", spent)

    async def spent(self, name: str) -> tuple[int, int]:
        """(spent, reserved) of a bucket."""
        values = await self._redis.hmget(self._k(name), ["spent", "reserved"])
        return int(values[0] or 0), int(values[1] or 0)

    async def window(self, name: str, limit: int, cost: int, now: float | None = None) -> Window:
        """Admit `cost` into the sliding window if it fits."""
        now = time.time() if now is None else now
        index = int(now // self._window_s)
        elapsed = (now % self._window_s) / self._window_s
        keys = [self._k(f"{name}:{index - 1}"), self._k(f"{name}:{index}")]
        allowed, remaining = await self._window(keys=keys, args=[limit, cost, elapsed, self._window_s])
        return Window(bool(int(allowed)), limit, max(0, int(remaining)), (1 - elapsed) * self._window_s)

    async def adjust_window(self, name: str, delta: int, now: float | None = None) -> None:
        """Correct the current minute's count (estimated tokens -> actual tokens)."""
        now = time.time() if now is None else now
        key = self._k(f"{name}:{int(now // self._window_s)}")
        await self._redis.incrby(key, delta)
        await self._redis.expire(key, max(1, int(2 * self._window_s)))

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
