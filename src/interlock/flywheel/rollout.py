"""Safe rollouts: run-time variant weights kept in step with the store, and canaries decided by a stated rule.

Every `interval_s` each replica reads the weights set at run time (`variant_weights`: an admin's, or a
decision's) into its routes, and, for each alias with a `[models.X.rollout]`, reads the canary's and the
baseline's numbers since the canary started — served requests, failures (status 500 and up) and, with a
`metric`, the values of that feedback metric on their requests — and applies `decide`:

- nothing is decided before both variants have `min_samples` requests (and `min_samples` metric values
  when a metric is set);
- **roll back** when the canary's error rate is above the baseline's by more than `max_error_increase`
  (one-sided z-test at `confidence`), or, with a metric, when the upper bound of the `confidence`
  interval of (canary mean - baseline mean) is below -`margin` (the canary is worse);
- **promote** when the upper bound of the canary's error-rate increase is at most `max_error_increase`
  and, with a metric, the lower bound of (canary mean - baseline mean) is above -`margin`
  (non-inferior within the margin);
- otherwise wait for more data.

The intervals are normal approximations (Wald) and the rule is checked at every interval without a
correction for repeated looks, so the real error of a decision is above 1 - `confidence`; `min_samples`
keeps the first looks from deciding on noise. Promotion sets the canary's weight to the sum of the two and
the baseline's to 0; rollback sets the canary's to 0. The first replica to decide records it
(`rollouts`), the others follow it; each decision is audited (`variant.promoted`, `variant.rolled_back`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

from interlock.audit.chain import AuditEvent
from interlock.routing.deployments import ModelRoute
from interlock.settings import RolloutSettings
from interlock.store.variant_queries import RolloutRecord, RolloutState, VariantStats, VariantStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a canary, and why (in words a person can check)."""

    state: RolloutState
    reason: str


def _mean_var(s: VariantStats) -> tuple[float, float]:
    mean = s.total / s.n
    var = max(0.0, (s.squares - s.n * mean * mean) / (s.n - 1)) if s.n > 1 else 0.0
    return mean, var


def decide(rule: RolloutSettings, canary: VariantStats, baseline: VariantStats) -> Decision | None:
    """The decision on a canary from its numbers and the baseline's (None: not yet; see the module docstring)."""
    if canary.requests < rule.min_samples or baseline.requests < rule.min_samples:
        return None
    z = NormalDist().inv_cdf(rule.confidence)
    pc, pb = canary.errors / canary.requests, baseline.errors / baseline.requests
    se = math.sqrt(pc * (1 - pc) / canary.requests + pb * (1 - pb) / baseline.requests)
    rise = pc - pb
    rates = f"error rate {pc:.2%} vs {pb:.2%} on {canary.requests}/{baseline.requests} requests"
    if rise - z * se > rule.max_error_increase:
        return Decision("rolled_back", f"{rates}: more than {rule.max_error_increase:.2%} worse")
    errors_ok = rise + z * se <= rule.max_error_increase
    if rule.metric is None:
        return (
            Decision("promoted", f"{rates}: not worse by more than {rule.max_error_increase:.2%}")
            if errors_ok
            else None
        )
    if canary.n < rule.min_samples or baseline.n < rule.min_samples:
        return None
    (mc, vc), (mb, vb) = _mean_var(canary), _mean_var(baseline)
    diff, half = mc - mb, z * math.sqrt(vc / canary.n + vb / baseline.n)
    means = (
        f"{rule.metric} {mc:.4g} vs {mb:.4g} on {canary.n}/{baseline.n} rated requests "
        f"(difference {diff:+.4g}, {rule.confidence:.0%} interval [{diff - half:+.4g}, {diff + half:+.4g}])"
    )
    if diff + half < -rule.margin:
        return Decision("rolled_back", f"{means}: worse than the baseline by more than {rule.margin:g}")
    if diff - half > -rule.margin and errors_ok:
        return Decision("promoted", f"{means}; {rates}")
    return None


def fingerprint(alias: str, rule: RolloutSettings) -> str:
    """Names one canary: a changed rule or another canary starts a new rollout."""
    return hashlib.sha256(f"{alias}\x00{rule.model_dump_json()}".encode()).hexdigest()[:16]


class Rollouts:
    """Applies run-time weights to the routes and decides canaries (see the module docstring)."""

    def __init__(
        self,
        routes: Callable[[], dict[str, ModelRoute]],
        store: VariantStore,
        audit: Callable[[AuditEvent], None],
        interval_s: float = 10.0,
    ) -> None:
        self._routes = routes  # read at each step: a config reload swaps them
        self._store = store
        self._audit = audit
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Put the store's run-time weights on every variant alias (none stored: the config's)."""
        stored: dict[str, dict[str, float]] = {}
        for w in await self._store.variant_weights():
            stored.setdefault(w.alias, {})[w.variant] = w.weight
        for alias, route in self._routes().items():
            if route.variants is not None:
                route.variants.set_overrides(stored.get(alias, {}))

    async def step(self, now: float | None = None) -> list[tuple[str, Decision]]:
        """Decide the running canaries that can be decided; the decisions this replica recorded."""
        now = time.time() if now is None else now
        made: list[tuple[str, Decision]] = []
        for alias, route in self._routes().items():
            rule = route.model.rollout
            if rule is None or route.variants is None:
                continue
            fp = fingerprint(alias, rule)
            record = await self._store.start_rollout(
                RolloutRecord(alias, fp, rule.canary, rule.baseline, "running", "", now)
            )
            if record.state != "running":
                continue
            stats = await self._store.variant_stats(alias, record.started_at, rule.metric)
            decision = decide(rule, stats.get(rule.canary, VariantStats()), stats.get(rule.baseline, VariantStats()))
            if decision is None or not await self._store.decide_rollout(
                alias, fp, decision.state, decision.reason, now
            ):
                continue
            await self._store.set_variant_weights(alias, weights_after(route, rule, decision.state), now, "rollout")
            self._audit(
                AuditEvent.admin(
                    f"variant.{decision.state}", actor_id=None, actor_name="rollout", target=f"{alias}:{rule.canary}",
                    baseline=rule.baseline, reason=decision.reason[:500], fingerprint=fp,
                )
            )  # fmt: skip
            made.append((alias, decision))
        if made:
            await self.refresh()
        return made

    def start(self) -> None:
        """Refresh and decide every `interval_s` in the background."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self._interval_s)
                try:
                    await self.refresh()
                    await self.step()
                except Exception:  # the store is down: the weights in force stay; try again next time
                    log.warning("variant weights and rollouts not refreshed", exc_info=True)

        self._task = asyncio.create_task(loop(), name="interlock-rollouts")

    async def close(self) -> None:
        """Stop the background loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def weights_after(route: ModelRoute, rule: RolloutSettings, state: RolloutState) -> dict[str, float]:
    """The weights a decision sets: promoted, the canary takes the baseline's share; rolled back, it gets none."""
    assert route.variants is not None
    weights = route.variants.weights()
    if state == "promoted":
        return {rule.canary: weights.get(rule.canary, 0.0) + weights.get(rule.baseline, 0.0) or 1.0, rule.baseline: 0.0}
    return {rule.canary: 0.0}
