"""Retries and fallbacks, only before the first byte reaches the client.

`run` tries the request on the alias's deployments in balancer order, then on its fallback aliases'
deployments, skipping deployments whose circuit breaker is open, with exponential backoff between
attempts. Only upstream failures are retried (502, 503, 504 and upstream 429); a client error (400)
is returned at once. Once a stream has produced its first chunk, the caller owns it: a later failure
is never retried, and ends the stream with an explicit error event.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from interlock.errors import GatewayError, RateLimited, Unavailable, UpstreamError, UpstreamTimeout
from interlock.routing.balancer import order_deployments
from interlock.routing.deployments import Deployment, ModelRoute
from interlock.settings import RoutingSettings

T = TypeVar("T")
RETRYABLE = (UpstreamError, Unavailable, UpstreamTimeout, RateLimited)


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a routed call produced, where, and after how many attempts."""

    deployment: Deployment
    result: T
    attempts: int


class Failover:
    """Runs a call across deployments and fallback aliases."""

    def __init__(
        self,
        routes: dict[str, ModelRoute],
        settings: RoutingSettings,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.routes = routes
        self.settings = settings
        self._sleep = sleep
        self._rng = rng or random.Random()

    def candidates(self, route: ModelRoute, allow: Callable[[Deployment], bool] | None = None) -> list[Deployment]:
        """Deployments to try, in order: the alias's own, then each fallback alias's."""
        out: list[Deployment] = []
        seen: set[str] = set()
        for r in [route, *(self.routes[a] for a in route.fallbacks)]:
            for d in order_deployments(r.deployments, self._rng):
                if d.name not in seen and (allow is None or allow(d)):
                    seen.add(d.name)
                    out.append(d)
        return out

    def _backoff(self, attempt: int) -> float:
        base = self.settings.backoff_ms / 1000 * (2 ** (attempt - 1))
        return float(base * (0.5 + self._rng.random()))

    async def run(
        self,
        route: ModelRoute,
        call: Callable[[Deployment], Awaitable[T]],
        candidates: list[Deployment] | None = None,
        *,
        on_attempt: Callable[[Deployment], None] | None = None,
        hold: bool = False,
    ) -> Outcome[T]:
        """The first successful call, or the last failure (503 if every breaker is open).

        Each attempt counts as outstanding on its deployment while it runs, and a success folds its
        time into the deployment's latency average (for a stream: the time to its first chunk). With
        `hold`, the deployment that succeeded stays outstanding until `release` (a stream being read).
        `on_attempt` is told of each deployment as it is tried.
        """
        plan = self.candidates(route) if candidates is None else candidates
        # With fewer deployments than attempts allowed, the same ones are tried again, in the same order.
        tries = plan * (self.settings.retries + 1)
        attempts = 0
        last: GatewayError | None = None
        for dep in tries:
            if attempts > self.settings.retries:
                break
            if not dep.breaker.allow():
                continue
            if attempts:
                await self._sleep(self._backoff(attempts))
            attempts += 1
            if on_attempt is not None:
                on_attempt(dep)
            dep.outstanding += 1
            started = time.perf_counter()
            try:
                result = await call(dep)
            except RETRYABLE as exc:
                dep.outstanding -= 1
                if not isinstance(exc, RateLimited):  # overloaded is not broken
                    dep.breaker.record_failure()
                last = exc
                continue
            except GatewayError:
                dep.outstanding -= 1
                dep.breaker.record_success()  # the upstream answered; the request was at fault
                raise
            except BaseException:
                dep.outstanding -= 1
                raise
            dep.observe_latency((time.perf_counter() - started) * 1000)
            if not hold:
                dep.outstanding -= 1
            dep.breaker.record_success()
            return Outcome(dep, result, attempts)
        if last is not None:
            raise last
        wait = min((d.breaker.retry_after() for d in plan), default=1.0)
        raise Unavailable(
            f"every deployment of '{route.alias}' is failing (circuit open); retry in {wait:.0f} s",
            code="circuit_open",
            headers={"Retry-After": str(max(1, round(wait)))},
        )

    @staticmethod
    def release(dep: Deployment) -> None:
        """End the hold that `run(..., hold=True)` kept on `dep`."""
        dep.outstanding -= 1
