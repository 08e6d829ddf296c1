"""Circuit breaker states, balancer order and failover decisions, with a fake clock and providers."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest

from interlock.errors import BadRequest, RateLimited, Unavailable, UpstreamError
from interlock.providers.base import Provider
from interlock.routing.balancer import order_deployments
from interlock.routing.breaker import CircuitBreaker
from interlock.routing.deployments import Deployment, ModelRoute
from interlock.routing.failover import Failover
from interlock.settings import ModelSettings, RoutingSettings
from interlock.types import Price


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_n_failures_then_lets_one_probe_through() -> None:
    clock = Clock()
    b = CircuitBreaker(failures=3, cooldown=10, clock=clock)
    for _ in range(2):
        b.record_failure()
    assert b.state == "closed" and b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow() and b.retry_after() == 10
    clock.now = 10
    assert b.state == "half_open"
    assert b.allow() and not b.allow()  # exactly one probe
    b.record_failure()  # the probe failed: open again for a full cooldown
    assert b.state == "open" and b.retry_after() == 10
    clock.now = 20
    assert b.allow()
    b.record_success()
    assert b.state == "closed" and b.allow() and b.allow()


def _dep(name: str, priority: int = 0, weight: float = 1.0) -> Deployment:
    model = ModelSettings(provider="fake", priority=priority, weight=weight)
    return Deployment("a", name, Provider("a", model), model, Price(Decimal(0), Decimal(0), "t"), CircuitBreaker(2, 30))


def test_balancer_prefers_priority_then_least_loaded_then_fastest() -> None:
    a, b, c, backup = _dep("a"), _dep("b"), _dep("c"), _dep("backup", priority=1)
    a.outstanding, b.outstanding, c.outstanding = 3, 1, 1
    b.latency_ms, c.latency_ms = 50.0, 10.0
    assert [d.name for d in order_deployments([a, b, c, backup], random.Random(0))] == ["c", "b", "a", "backup"]
    heavy = _dep("heavy", weight=4.0)
    heavy.outstanding = 3  # 3 / 4 < 1 / 1
    assert order_deployments([b, heavy], random.Random(0))[0].name == "heavy"


def test_balancer_puts_open_breakers_last() -> None:
    a, b = _dep("a"), _dep("b", priority=1)
    a.breaker.record_failure()
    a.breaker.record_failure()
    assert [d.name for d in order_deployments([a, b])] == ["b", "a"]


def test_balancer_returns_a_lone_deployment_as_a_new_list_even_with_its_breaker_open() -> None:
    only = _dep("only")
    deployments = [only]
    ordered = order_deployments(deployments, random.Random(0))
    assert ordered == [only] and ordered is not deployments  # callers may extend it (fallbacks)
    only.breaker.record_failure()
    only.breaker.record_failure()
    assert not only.breaker.available()
    assert order_deployments(deployments) == [only]  # failover still reaches it (and gets its 503)


def _failover(deps: list[Deployment], retries: int = 2) -> tuple[Failover, ModelRoute]:
    route = ModelRoute("a", ModelSettings(provider="fake"), deps, [])
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)

    return Failover({"a": route}, RoutingSettings(retries=retries), sleep=sleep, rng=random.Random(1)), route


def test_failover_moves_to_the_next_deployment_on_upstream_errors() -> None:
    a, b = _dep("a"), _dep("b", priority=1)
    fo, route = _failover([a, b])
    calls: list[str] = []

    async def call(d: Deployment) -> str:
        calls.append(d.name)
        if d.name == "a":
            raise UpstreamError("boom")
        return "ok"

    out = asyncio.run(fo.run(route, call))
    assert (out.result, out.deployment.name, out.attempts, calls) == ("ok", "b", 2, ["a", "b"])


def test_failover_does_not_retry_client_errors() -> None:
    fo, route = _failover([_dep("a"), _dep("b")])
    calls = 0

    async def call(d: Deployment) -> str:
        nonlocal calls
        calls += 1
        raise BadRequest("your fault")

    with pytest.raises(BadRequest):
        asyncio.run(fo.run(route, call))
    assert calls == 1


def test_failover_retries_a_single_deployment_and_gives_up_with_the_last_error() -> None:
    a = _dep("a")
    fo, route = _failover([a], retries=2)
    calls = 0

    async def call(d: Deployment) -> str:
        nonlocal calls
        calls += 1
        raise UpstreamError(f"boom {calls}")

    with pytest.raises(UpstreamError, match="boom 2"):
        asyncio.run(fo.run(route, call))
    assert calls == 2  # the breaker (threshold 2) opened after the second failure
    with pytest.raises(Unavailable) as info:
        asyncio.run(fo.run(route, call))
    assert info.value.code == "circuit_open" and int(info.value.headers["Retry-After"]) >= 1 and calls == 2


def test_rate_limited_fails_over_without_opening_the_breaker() -> None:
    a, b = _dep("a"), _dep("b", priority=1)
    fo, route = _failover([a, b])

    async def call(d: Deployment) -> str:
        if d.name == "a":
            raise RateLimited("busy")
        return "ok"

    for _ in range(5):
        assert asyncio.run(fo.run(route, call)).deployment.name == "b"
    assert a.breaker.state == "closed"
