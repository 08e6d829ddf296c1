"""A key's own usage: its requests, tokens and cost per model alias, and every budget that applies to it.

Any authenticated principal may ask, for itself only: a key sees its own ledger rows and the budgets of
its key, team and organisation; the admin key sees the requests made with the admin key. Nothing here
reveals another key's spend, except what a shared team or organisation budget has spent in total.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pydantic import BaseModel, Field

from interlock.admin.context import AdminContext
from interlock.admin.limits import BudgetStatus
from interlock.auth.keys import Principal
from interlock.governance.admission import period_end
from interlock.store.records import Scope, SpendRow


class UsageQuery(BaseModel):
    """What to report (the query of GET /v1/usage)."""

    since: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="only requests from this epoch second on"
    )


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """A budget that applies to the caller, and when its current period ends (None: a total budget)."""

    status: BudgetStatus
    resets_at: float | None


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """The caller's usage since `since`, per model alias (most expensive first), and its budgets."""

    key_id: str | None
    since: float | None
    models: list[SpendRow]
    budgets: list[BudgetUse]

    @property
    def total(self) -> SpendRow:
        """Every model's rows added up."""
        return SpendRow(
            "total",
            sum(r.requests for r in self.models),
            sum(r.prompt_tokens for r in self.models),
            sum(r.completion_tokens for r in self.models),
            sum(r.cost_micros for r in self.models),
            sum(r.errors for r in self.models),
            reference_cost_micros=sum(r.reference_cost_micros for r in self.models),
        )


def _scopes(principal: Principal) -> set[tuple[Scope, str]]:
    """The budget scopes a principal's requests are charged to."""
    pairs: list[tuple[Scope, str | None]] = [
        ("key", principal.key_id),
        ("team", principal.team_id),
        ("org", principal.org_id),
    ]
    return {(scope, ident) for scope, ident in pairs if ident}


async def key_usage(ctx: AdminContext, actor: Principal, query: UsageQuery) -> KeyUsage:
    """The caller's own usage and budgets, counting every request answered so far."""
    await ctx.store.flush()
    rows = await ctx.store.key_usage(actor.key_id, query.since)
    scopes, now, budgets = _scopes(actor), time.time(), []
    for budget in await ctx.store.list_budgets():
        if (budget.scope, budget.scope_id) in scopes:
            spent, reserved = await ctx.governance.budget_spent(budget, now)
            budgets.append(BudgetUse(BudgetStatus(budget, spent, reserved), period_end(budget.period, now)))
    return KeyUsage(actor.key_id, query.since, rows, budgets)
