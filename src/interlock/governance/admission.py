"""Budgets that cannot be overspent, and rate limits shared by every replica.

Admission, before a model is called:
1. Rate limits (key, team, model alias): one request against each RPM window; the estimated tokens
   (prompt + the output limit) against each TPM window. Over a limit: 429 with `Retry-After` and
   OpenAI's `x-ratelimit-*` headers.
2. Budgets (key, team, org; per UTC day, UTC month or in total): reserve the worst-case cost in every
   applicable budget at once. The worst case prices an upper bound of the prompt's tokens (everything
   the upstream may bill, see `governance.bounds`) and the
   output limit (`max_tokens`, or the configured cap when unset) at the most expensive deployment the
   request may reach. If less than that is left, the request is still served when what is left pays
   for the prompt and at least one output token: `max_tokens` is lowered to what is affordable.

Settlement, after the call: the reservation is released and the actual cost is added; TPM windows
are corrected to the actual tokens. A stream whose running cost reaches its reservation is cut off
with an error event.

The bound: spend never exceeds a budget as long as the upstream honours `max_tokens` and counts no
more prompt tokens than the prompt's UTF-8 bytes plus overhead, because every in-flight request
holds a reservation for its worst case and reservations are granted atomically (in Redis across
replicas). Rate limits are admitted atomically per window; a request denied by one limit may already
have been counted by another, so counts err on the strict side.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from interlock.auth.keys import Principal
from interlock.background import Periodic
from interlock.errors import BudgetExceeded, RateLimited, Unavailable
from interlock.governance.counters import (
    Bucket,
    Counters,
    CountersUnavailable,
    Grant,
    LocalCounters,
    Missing,
    Window,
)
from interlock.store.records import BudgetRecord, Period, RateLimitRecord, Scope
from interlock.types import Price

log = logging.getLogger(__name__)
SEED_TRIES = 3


class BudgetStore(Protocol):
    """What governance reads from the store."""

    async def list_budgets(self) -> list[BudgetRecord]: ...
    async def list_rate_limits(self) -> list[RateLimitRecord]: ...
    async def spent_since(self, scope: Scope, scope_id: str, since: float) -> int: ...
    async def flush(self) -> None: ...


def period_start(period: Period, now: float) -> tuple[str, float]:
    """The bucket suffix and start (epoch seconds) of the period containing `now`."""
    day = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = day.replace(hour=0, minute=0, second=0, microsecond=0)
        return "d:" + start.strftime("%Y-%m-%d"), start.timestamp()
    if period == "month":
        start = day.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return "m:" + start.strftime("%Y-%m"), start.timestamp()
    return "t", 0.0


def budget_bucket(rule: BudgetRecord, now: float) -> str:
    """The name of the counter that holds `rule`'s spend and reservations in the period containing `now`."""
    suffix, _ = period_start(rule.period, now)
    return f"budget:{rule.scope}:{rule.scope_id}:{suffix}"


def period_end(period: Period, now: float) -> float | None:
    """When the period containing `now` ends (None for total budgets)."""
    day = datetime.fromtimestamp(now, UTC)
    if period == "day":
        return period_start("day", now)[1] + 86400
    if period == "month":
        nxt = day.replace(year=day.year + day.month // 12, month=day.month % 12 + 1, day=1, hour=0, minute=0, second=0)
        return nxt.replace(microsecond=0).timestamp()
    return None


@dataclass
class Admission:
    """What admission granted one request, to be settled afterwards."""

    request_id: str
    buckets: list[Bucket] = field(default_factory=list)
    granted_micros: int | None = None  # None: no budget applies
    max_tokens: int | None = None  # lowered output limit, when the budget cannot pay for more
    tpm_windows: list[str] = field(default_factory=list)
    leases: list[str] = field(default_factory=list)  # in-flight slots held until settlement
    admitted_tokens: int = 0
    headers: dict[str, str] = field(default_factory=dict)


def _reset(seconds: float) -> str:
    return f"{max(seconds, 0.001):.3f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60)}s"


class Governance:
    """Applies budgets and rate limits; rules are cached in memory and refreshed from the store."""

    def __init__(
        self,
        store: BudgetStore,
        counters: Counters,
        *,
        refresh_s: float = 2.0,
        reservation_ttl_s: int = 900,
        default_output_cap: int = 4096,
        fail_open: bool = False,
    ) -> None:
        self._store = store
        self.fail_open = fail_open
        self.counters = counters
        self._ttl = reservation_ttl_s
        self.default_output_cap = default_output_cap
        self._budgets: dict[tuple[str, str], list[BudgetRecord]] = {}
        self._limits: dict[tuple[str, str], RateLimitRecord] = {}
        self._refresher = Periodic(
            self.refresh,
            refresh_s,
            name="interlock-governance-refresh",
            failure="governance refresh failed; keeping the previous rules",
        )

    async def start(self) -> None:
        """Load the rules and keep them fresh."""
        await self._refresher.begin()

    async def close(self) -> None:
        """Stop refreshing and release the counters."""
        await self._refresher.close()
        await self.counters.close()

    async def refresh(self) -> None:
        """Reload budgets and rate limits from the store."""
        budgets: dict[tuple[str, str], list[BudgetRecord]] = {}
        for b in await self._store.list_budgets():
            budgets.setdefault((b.scope, b.scope_id), []).append(b)
        self._budgets = budgets
        self._limits = {(r.scope, r.scope_id): r for r in await self._store.list_rate_limits()}

    def _scopes(self, principal: Principal) -> list[tuple[Scope, str]]:
        scopes: list[tuple[Scope, str]] = []
        if principal.key_id:
            scopes.append(("key", principal.key_id))
        if principal.team_id:
            scopes.append(("team", principal.team_id))
        if principal.org_id:
            scopes.append(("org", principal.org_id))
        return scopes

    def applies(self, principal: Principal, alias: str) -> bool:
        """Whether any budget or rate limit applies (most requests pay nothing when none does)."""
        scopes = self._scopes(principal)
        return any(s in self._budgets or s in self._limits for s in scopes) or ("model", alias) in self._limits

    # rate limits --------------------------------------------------------------------------

    async def _check_limits(self, adm: Admission, principal: Principal, alias: str, tokens: int) -> None:
        now = time.time()
        for scope, ident in [*self._scopes(principal), ("model", alias)]:
            rule = self._limits.get((scope, ident))
            if rule is None:
                continue
            if rule.max_concurrent is not None:
                await self._hold_slot(adm, f"{scope}:{ident}", rule.max_concurrent)
            checks: list[tuple[str, int | None, int]] = [("requests", rule.rpm, 1), ("tokens", rule.tpm, tokens)]
            for kind, limit, cost in checks:
                if limit is None:
                    continue
                name = f"rl:{scope}:{ident}:{kind}"
                window: Window = await self.counters.window(name, limit, cost, now, entry=adm.request_id)
                adm.headers[f"x-ratelimit-limit-{kind}"] = str(limit)
                adm.headers[f"x-ratelimit-remaining-{kind}"] = str(window.remaining)
                adm.headers[f"x-ratelimit-reset-{kind}"] = _reset(window.reset_s)
                if not window.allowed:
                    wait = window.reset_s if cost <= limit else 60.0
                    raise RateLimited(
                        f"rate limit of {limit} {kind} per minute reached for {scope} '{ident}'"
                        + (f"; this request alone needs {cost} tokens" if kind == "tokens" and cost > limit else "")
                        + f"; retry in {wait:.0f} s",
                        headers={**adm.headers, "Retry-After": str(max(1, round(wait)))},
                    )
                if kind == "tokens":
                    adm.tpm_windows.append(name)
        adm.admitted_tokens = tokens

    # budgets ------------------------------------------------------------------------------

    async def _buckets(self, principal: Principal, now: float) -> list[Bucket]:
        buckets = []
        for scope, ident in self._scopes(principal):
            for rule in self._budgets.get((scope, ident), []):
                buckets.append(Bucket(budget_bucket(rule, now), rule.limit_micros))
        return buckets

    async def budget_spent(self, rule: BudgetRecord, now: float | None = None) -> tuple[int, int]:
        """What `rule`'s current period has spent and holds reserved; from the ledger while no counter has it."""
        now = time.time() if now is None else now
        spent, reserved = await self.counters.spent(budget_bucket(rule, now))
        if spent == 0 and reserved == 0:
            await self._store.flush()
            spent = await self._store.spent_since(rule.scope, rule.scope_id, period_start(rule.period, now)[1])
        return spent, reserved

    async def _seed(self, names: tuple[str, ...]) -> None:
        await self._store.flush()
        now = time.time()
        for name in names:
            _, scope, ident, kind, *_ = name.split(":")
            period: Period = {"d": "day", "m": "month", "t": "total"}[kind]  # type: ignore[assignment]
            spent = await self._store.spent_since(scope, ident, period_start(period, now)[1])  # type: ignore[arg-type]
            await self.counters.seed(name, spent)

    async def admit(
        self,
        request_id: str,
        principal: Principal,
        alias: str,
        price: Price,
        prompt_bound: int,
        token_estimate: int,
        output_limit: int | None,
    ) -> Admission:
        """Apply rate limits, then reserve the worst-case cost; 429 when refused.

        When the shared counters cannot be reached: 503 with `Retry-After` (fail closed), or, with
        `fail_open`, the request goes on unmetered by budgets and limits (logged, and marked with
        `x-interlock-governance: unenforced`).
        """
        adm = Admission(request_id)
        try:
            return await self._reserve(adm, principal, alias, price, prompt_bound, token_estimate, output_limit)
        except CountersUnavailable as exc:
            await self._give_back(adm)
            if self.fail_open:
                log.warning("governance counters unavailable (%s); admitting %s unmetered (fail_open)", exc, request_id)
                return Admission(request_id, headers={"x-interlock-governance": "unenforced"})
            log.error("governance counters unavailable (%s); refusing %s (fail closed)", exc, request_id)
            raise Unavailable(
                "budgets and rate limits cannot be checked right now (the shared counters are unreachable); "
                "retry shortly",
                code="governance_unavailable",
                headers={"Retry-After": "1"},
            ) from None
        except BaseException:
            await self._give_back(adm)
            raise

    async def _give_back(self, adm: Admission) -> None:
        """Release the slots a request refused after taking them still holds (best effort)."""
        if adm.leases:
            with contextlib.suppress(CountersUnavailable):
                await self.release(adm)

    async def _reserve(
        self,
        adm: Admission,
        principal: Principal,
        alias: str,
        price: Price,
        prompt_bound: int,
        token_estimate: int,
        output_limit: int | None,
    ) -> Admission:
        request_id = adm.request_id
        cap = self.default_output_cap if output_limit is None else output_limit
        await self._check_limits(adm, principal, alias, token_estimate + cap)
        now = time.time()
        buckets = await self._buckets(principal, now)
        if not buckets:
            return adm
        worst = price.cost_micros(prompt_bound, cap)
        if worst == 0:
            return adm  # a free model (the embedded one) cannot spend: nothing to reserve
        minimum = price.cost_micros(prompt_bound, 1)
        result: Grant | Missing = await self.counters.reserve(request_id, buckets, worst, minimum, self._ttl)
        for _ in range(SEED_TRIES):  # buckets that vanish again between seeding and reserving: seed again
            if not isinstance(result, Missing):
                break
            await self._seed(result.names)
            result = await self.counters.reserve(request_id, buckets, worst, minimum, self._ttl)
        if isinstance(result, Missing):
            raise CountersUnavailable(f"budget counters {', '.join(result.names)} keep vanishing")
        if result.amount == 0:
            _, scope, ident, kind, *_ = result.tightest.split(":") if result.tightest else ["", "", "", "t"]
            period = {"d": "daily", "m": "monthly", "t": "total"}.get(kind, "")
            end = period_end({"d": "day", "m": "month"}.get(kind, "total"), now)  # type: ignore[arg-type]
            headers = {"Retry-After": str(max(1, int(end - now)))} if end else {}
            raise BudgetExceeded(
                f"the {period} budget of {scope} '{ident}' is exhausted: ${result.left / 1e6:.6f} left, "
                f"this request needs at least ${minimum / 1e6:.6f}",
                headers=headers,
            )
        adm.buckets, adm.granted_micros = buckets, result.amount
        if result.amount < worst and price.output_per_mtok > 0:
            affordable = (result.amount - price.cost_micros(prompt_bound, 0)) / price.output_per_mtok
            adm.max_tokens = max(1, int(affordable))
        return adm

    async def _hold_slot(self, adm: Admission, name: str, limit: int) -> None:
        held = await self.counters.acquire(name, limit, adm.request_id, self._ttl)
        if held is None:
            raise RateLimited(
                f"{name.replace(':', ' ', 1)} has {limit} requests in flight, its limit; retry when one finishes",
                code="concurrency_limit_exceeded",
                headers={"Retry-After": "1"},
            )
        adm.leases.append(name)

    async def release(self, adm: Admission) -> None:
        """Give back the in-flight slots a request holds."""
        for name in adm.leases:
            await self.counters.release(name, adm.request_id)
        adm.leases.clear()

    async def settle(self, adm: Admission, cost_micros: int, tokens: int) -> None:
        """Release the slots and the reservation, add the actual cost, and correct the TPM windows."""
        await self.release(adm)
        if adm.buckets:
            await self.counters.settle(adm.request_id, adm.buckets, cost_micros)
        for name in adm.tpm_windows:
            await self.counters.adjust_window(name, tokens - adm.admitted_tokens, entry=adm.request_id)

    def settle_now(self, adm: Admission, cost_micros: int, tokens: int) -> bool:
        """`settle` at once when the counters are in this process (they cannot fail or wait); else False,
        and the caller settles with `settle` (shared counters: a round trip that may need retrying)."""
        counters = self.counters
        if not isinstance(counters, LocalCounters):
            return False
        for name in adm.leases:
            counters.release_now(name, adm.request_id)
        adm.leases.clear()
        if adm.buckets:
            counters.settle_now(adm.request_id, adm.buckets, cost_micros)
        for name in adm.tpm_windows:
            counters.adjust_window_now(name, tokens - adm.admitted_tokens, entry=adm.request_id)
        return True

    def counts_tokens(self, principal: Principal, alias: str) -> bool:
        """Whether a tokens-per-minute limit applies (only then is the prompt's token estimate needed)."""
        limits = self._limits
        if not limits:
            return False
        keys = [*self._scopes(principal), ("model", alias)]
        return any(rule.tpm is not None for rule in (limits.get(k) for k in keys) if rule is not None)
