"""Budget and rate-limit counters: the in-process and Redis implementations pass the same tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from interlock.governance.counters import Bucket, Counters, Grant, LocalCounters, Missing
from interlock.governance.redis_counters import RedisCounters
from tests.conftest import REDIS


@pytest.fixture(params=["local", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Counters]:
    if request.param == "local":
        yield LocalCounters()
        return
    c = RedisCounters(REDIS, prefix=f"test:{uuid.uuid4().hex}:")
    await c.ping()  # a missing Redis fails these tests; they are never skipped
    yield c
    await c.close()


async def test_unseeded_buckets_are_reported_missing(counters: Counters) -> None:
    result = await counters.reserve("r1", [Bucket("b", 100)], 10, 1, 60)
    assert result == Missing(("b",))


async def test_reserve_is_all_or_nothing_across_buckets(counters: Counters) -> None:
    key, team = Bucket("key", 1000), Bucket("team", 150)
    await counters.seed("key", 0)
    await counters.seed("team", 100)
    grant = await counters.reserve("r1", [key, team], 40, 10, 60)
    assert grant == Grant(40, 40, "")
    partial = await counters.reserve("r2", [key, team], 40, 5, 60)
    assert isinstance(partial, Grant) and partial.amount == 10 and partial.tightest == "team"
    refused = await counters.reserve("r3", [key, team], 40, 5, 60)
    assert isinstance(refused, Grant) and refused.amount == 0
    assert await counters.spent("key") == (0, 50)  # nothing reserved for the refused request
    await counters.settle("r1", [key, team], 25)
    await counters.settle("r2", [key, team], 10)
    assert await counters.spent("team") == (135, 0)
    assert await counters.spent("key") == (35, 0)


async def test_seed_does_not_overwrite(counters: Counters) -> None:
    await counters.seed("b", 70)
    await counters.seed("b", 0)
    assert (await counters.spent("b"))[0] == 70


async def test_expired_reservations_are_released(counters: Counters) -> None:
    b = Bucket("b", 100)
    await counters.seed("b", 0)
    assert isinstance(g := await counters.reserve("dead", [b], 100, 1, 1), Grant) and g.amount == 100
    assert (await counters.reserve("r", [b], 10, 1, 60)).amount == 0  # type: ignore[union-attr]
    await asyncio.sleep(1.1)  # the dead replica's reservation expires
    assert (await counters.reserve("r", [b], 10, 1, 60)).amount == 10  # type: ignore[union-attr]


async def test_concurrent_reservations_never_overcommit(counters: Counters) -> None:
    b = Bucket("b", 1000)
    await counters.seed("b", 0)
    grants = await asyncio.gather(*(counters.reserve(f"r{i}", [b], 30, 30, 60) for i in range(100)))
    total = sum(g.amount for g in grants if isinstance(g, Grant))
    assert total <= 1000 and total == 990  # 33 grants of 30 fit, the 34th does not


async def test_sliding_window(counters: Counters) -> None:
    t0 = 6000.0
    assert (await counters.window("w", 3, 1, t0, entry="a")).allowed
    assert (await counters.window("w", 3, 2, t0 + 1, entry="b")).allowed
    denied = await counters.window("w", 3, 1, t0 + 2)
    # Full until the first entry leaves the window, 60 s after it came.
    assert not denied.allowed and denied.remaining == 0 and 57.9 < denied.reset_s <= 58.1
    assert (await counters.window("w", 3, 1, t0 + 60.5, entry="c")).allowed  # "a" has left
    assert not (await counters.window("w", 3, 1, t0 + 60.5)).allowed
    await counters.adjust_window("w", -1, t0 + 60.5, entry="b")  # b's estimate was one token too high
    assert (await counters.window("w", 3, 1, t0 + 60.5)).allowed


async def test_rate_limits_do_not_leak_across_a_minute_boundary(counters: Counters) -> None:
    """Finding: with RPM 30, a client pacing its requests from second 45 got 49 accepted in 54.7 s."""
    admitted: list[float] = []
    for i in range(120):
        now = 6045.0 + i * 0.5
        if (await counters.window("rpm", 30, 1, now)).allowed:
            admitted.append(now)
    assert admitted
    worst = max(sum(1 for t in admitted if end - 60 < t <= end) for end in admitted)
    assert worst == 30  # never more than the limit in any real 60-second window


async def test_a_settlement_into_a_vanished_bucket_does_not_recreate_it() -> None:
    """Finding: when Redis lost a budget's keys, each settling request recreated the bucket holding only
    its own cost, and the budget forgot what had been spent. Now the bucket stays missing until admission
    re-seeds it from the ledger."""
    import redis.asyncio as aioredis

    prefix = f"test:{uuid.uuid4().hex}:"
    c = RedisCounters(REDIS, prefix=prefix)
    raw = aioredis.Redis.from_url(REDIS)
    try:
        bucket = Bucket("budget:key:k1:t", 1000)
        await c.seed(bucket.name, 900)
        grant = await c.reserve("r1", [bucket], 50, 1, 60)
        assert isinstance(grant, Grant) and grant.amount == 50
        for key in [k async for k in raw.scan_iter(f"{prefix}*")]:  # a restart without persistence
            await raw.delete(key)
        await c.settle("r1", [bucket], 40)
        assert await c.reserve("r2", [bucket], 50, 1, 60) == Missing((bucket.name,))
    finally:
        await raw.aclose()
        await c.close()


async def test_an_unreachable_redis_is_reported_as_unavailable() -> None:
    from interlock.governance.counters import CountersUnavailable
    from tests.conftest import free_port

    c = RedisCounters(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(CountersUnavailable):
            await c.reserve("r1", [Bucket("b", 10)], 5, 1, 60)
        with pytest.raises(CountersUnavailable):
            await c.settle("r1", [Bucket("b", 10)], 5)
    finally:
        await c.close()


async def test_in_flight_slots_are_capped_released_and_expire(counters: Counters) -> None:
    assert await counters.acquire("key:k", 2, "r1", 60, now=1000.0) == 1
    assert await counters.acquire("key:k", 2, "r2", 60, now=1000.0) == 2
    assert await counters.acquire("key:k", 2, "r3", 60, now=1001.0) is None
    await counters.release("key:k", "r1")
    assert await counters.acquire("key:k", 2, "r3", 60, now=1001.0) == 2
    assert await counters.acquire("key:k", 2, "r4", 60, now=1061.0) == 1  # r2 and r3 were never released


async def test_raise_spent_only_raises_and_never_creates(counters: Counters) -> None:
    assert await counters.raise_spent("nope", 10) is None
    assert await counters.reserve("r", [Bucket("nope", 100)], 1, 1, 60) == Missing(("nope",))
    await counters.seed("b", 40)
    assert await counters.raise_spent("b", 70) == 40
    assert await counters.raise_spent("b", 10) == 70
    assert (await counters.spent("b"))[0] == 70


async def test_in_process_totals_stay_exact_as_reservations_expire_and_settle() -> None:
    """The in-process counters keep a running reserved total; expiries and settlements keep it exact."""
    now = [1000.0]
    c = LocalCounters(clock=lambda: now[0])
    b = Bucket("b", 1000)
    await c.seed("b", 0)
    for rid, amount, ttl in [("short", 100, 10), ("long", 200, 100), ("mid", 300, 50)]:
        assert await c.reserve(rid, [b], amount, 1, ttl) == Grant(amount, amount, "")
    assert await c.spent("b") == (0, 600)
    now[0] += 20  # "short" has expired
    assert await c.spent("b") == (0, 500)
    c.settle_now("short", [b], 40)  # settling after the expiry releases nothing twice
    assert await c.spent("b") == (40, 500)
    await c.settle("mid", [b], 250)
    assert await c.spent("b") == (290, 200)
    now[0] += 200  # "long" expires too: nothing is held
    assert await c.spent("b") == (290, 0)
    assert (await c.reserve("next", [b], 800, 1, 60)).amount == 710  # type: ignore[union-attr]
