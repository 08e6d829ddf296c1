"""Budget and rate-limit counters: the in-process and Redis implementations pass the same tests."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from interlock.governance.counters import Bucket, Counters, Grant, LocalCounters, Missing
from interlock.governance.redis_counters import RedisCounters

REDIS = os.environ.get("INTERLOCK_TEST_REDIS", "redis://127.0.0.1:6379/15")


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
    t0 = 6000.0  # the start of a minute
    assert (await counters.window("w", 3, 1, t0)).allowed
    assert (await counters.window("w", 3, 2, t0 + 1)).allowed
    denied = await counters.window("w", 3, 1, t0 + 2)
    assert not denied.allowed and denied.remaining == 0 and 57 < denied.reset_s <= 58
    # Half-way into the next minute, half of the previous minute's 3 still counts.
    assert (await counters.window("w", 3, 1, t0 + 90)).allowed
    assert not (await counters.window("w", 3, 1, t0 + 90)).allowed
    await counters.adjust_window("w", -1, t0 + 90)
    assert (await counters.window("w", 3, 1, t0 + 90)).allowed
