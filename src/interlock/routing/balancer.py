"""Order an alias's deployments for one request: preferred priority, least outstanding, fastest.

Within the best priority level that has an available deployment, the order is by outstanding
requests divided by weight, then by latency (EWMA of time to first byte), then at random to spread
ties. Deployments of worse priority, and those whose breaker is open, come after, so failover can
still reach them.
"""

from __future__ import annotations

import random

from interlock.routing.deployments import Deployment


def _load_key(d: Deployment, rng: random.Random) -> tuple[float, float, float]:
    return (d.outstanding / d.weight, d.latency_ms if d.latency_ms is not None else 0.0, rng.random())


def order_deployments(deployments: list[Deployment], rng: random.Random | None = None) -> list[Deployment]:
    """The order in which to try `deployments` for one request."""
    if len(deployments) == 1:  # most aliases: nothing to order (and no Random to make)
        return list(deployments)
    rng = rng or random.Random()
    available = [d for d in deployments if d.breaker.available()]
    broken = [d for d in deployments if not d.breaker.available()]
    ranked = sorted(available, key=lambda d: (d.priority, *_load_key(d, rng)))
    return ranked + sorted(broken, key=lambda d: d.breaker.retry_after())
