"""Budgets (hard spending limits) and rate limits on orgs, teams, keys and model aliases.

A change takes effect at once in this process (the governance rules are re-read) and on other replicas
within `governance.refresh_s`. How spend is counted against a budget, and what each counter is called,
is governance's (`governance.admission`); these services only set the rules and report on them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from interlock.admin.context import AdminContext, audit_action
from interlock.auth.keys import Principal, require_admin
from interlock.errors import BadRequest, NotFound
from interlock.store.records import BudgetRecord, Period, RateLimitRecord, Scope

BudgetScope = Literal["org", "team", "key"]
LimitScope = Literal["key", "team", "model"]


class BudgetRef(BaseModel):
    """Which budget: one scope, one id, one period."""

    scope: BudgetScope
    scope_id: str = Field(min_length=1)
    period: Period


class BudgetSet(BudgetRef):
    """A hard limit in USD for one org, team or key (the body of PUT /admin/budgets)."""

    limit_usd: Decimal = Field(ge=0, max_digits=18, decimal_places=6)


class RateLimitRef(BaseModel):
    """Which rate limit: one scope and one id."""

    scope: LimitScope
    scope_id: str = Field(min_length=1)


class RateLimitSet(RateLimitRef):
    """Requests and tokens per minute (None: no limit of that kind; the body of PUT /admin/rate-limits)."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)  # requests in flight at once, across replicas


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A budget with what its current period has spent and holds reserved for requests in flight."""

    budget: BudgetRecord
    spent_micros: int
    reserved_micros: int

    @property
    def remaining_micros(self) -> int:
        """What is left to spend in the current period."""
        return max(0, self.budget.limit_micros - self.spent_micros - self.reserved_micros)


async def check_scope(ctx: AdminContext, scope: Scope, scope_id: str) -> None:
    """404 unless `scope_id` names an existing org, team, key or model alias."""
    if scope == "org":
        known = scope_id in {o.id for o in await ctx.store.list_orgs()}
    elif scope == "team":
        known = scope_id in {t.id for t in await ctx.store.list_teams()}
    elif scope == "key":
        known = scope_id in {k.id for k in await ctx.keys.list()}
    else:
        known = ctx.knows_model(scope_id)
    if not known:
        raise NotFound(f"no {scope} with id '{scope_id}'", code=f"{scope}_not_found", param="scope_id")


async def set_budget(ctx: AdminContext, actor: Principal, spec: BudgetSet) -> BudgetRecord:
    """Create or change a budget."""
    require_admin(actor)
    await check_scope(ctx, spec.scope, spec.scope_id)
    record = BudgetRecord(spec.scope, spec.scope_id, spec.period, int(spec.limit_usd * 1_000_000), time.time())
    await ctx.store.upsert_budget(record)
    await ctx.governance.refresh()
    await audit_action(
        ctx,
        actor,
        "budget.set",
        f"{record.scope}:{record.scope_id}",
        period=record.period,
        limit_micros=record.limit_micros,
    )
    return record


async def delete_budget(ctx: AdminContext, actor: Principal, ref: BudgetRef) -> None:
    """Remove a budget."""
    require_admin(actor)
    if not await ctx.store.delete_budget(ref.scope, ref.scope_id, ref.period):
        raise NotFound("no such budget", code="budget_not_found")
    await ctx.governance.refresh()
    await audit_action(ctx, actor, "budget.delete", f"{ref.scope}:{ref.scope_id}", period=ref.period)


async def list_budgets(ctx: AdminContext, actor: Principal) -> list[BudgetStatus]:
    """Every budget, with what is spent and reserved in its current period."""
    require_admin(actor, write=False)
    now, statuses = time.time(), []
    for budget in await ctx.store.list_budgets():
        spent, reserved = await ctx.governance.budget_spent(budget, now)
        statuses.append(BudgetStatus(budget, spent, reserved))
    return statuses


async def set_rate_limit(ctx: AdminContext, actor: Principal, spec: RateLimitSet) -> RateLimitRecord:
    """Create or change a rate limit (at least one of rpm, tpm and max_concurrent)."""
    require_admin(actor)
    if spec.rpm is None and spec.tpm is None and spec.max_concurrent is None:
        raise BadRequest("set 'rpm', 'tpm', 'max_concurrent' or several (DELETE removes a limit)")
    await check_scope(ctx, spec.scope, spec.scope_id)
    record = RateLimitRecord(spec.scope, spec.scope_id, spec.rpm, spec.tpm, time.time(), spec.max_concurrent)
    await ctx.store.upsert_rate_limit(record)
    await ctx.governance.refresh()
    await audit_action(
        ctx,
        actor,
        "rate_limit.set",
        f"{record.scope}:{record.scope_id}",
        rpm=record.rpm or 0,
        tpm=record.tpm or 0,
        max_concurrent=record.max_concurrent or 0,
    )
    return record


async def delete_rate_limit(ctx: AdminContext, actor: Principal, ref: RateLimitRef) -> None:
    """Remove a rate limit."""
    require_admin(actor)
    if not await ctx.store.delete_rate_limit(ref.scope, ref.scope_id):
        raise NotFound("no such rate limit", code="rate_limit_not_found")
    await ctx.governance.refresh()
    await audit_action(ctx, actor, "rate_limit.delete", f"{ref.scope}:{ref.scope_id}")


async def list_rate_limits(ctx: AdminContext, actor: Principal) -> list[RateLimitRecord]:
    """Every rate limit."""
    require_admin(actor, write=False)
    return await ctx.store.list_rate_limits()
