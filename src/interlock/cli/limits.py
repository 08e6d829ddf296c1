"""`interlock budgets set|list|delete` and `interlock limits set|list|delete`: spending and rate limits.

A running server applies a change within `governance.refresh_s`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from interlock import admin
from interlock.admin import BudgetRef, BudgetSet, RateLimitRef, RateLimitSet
from interlock.cli.options import ConfigOption, spec
from interlock.cli.services import call
from interlock.cli.spend import dollars

budgets = typer.Typer(help="Hard spending limits on orgs, teams and keys.", no_args_is_help=True)
limits = typer.Typer(help="Requests and tokens per minute for keys, teams and models.", no_args_is_help=True)
ScopeId = Annotated[str, typer.Argument(help="The org, team or key id (a model alias for a rate limit)")]
Period = Annotated[Literal["day", "month", "total"], typer.Option(help="Per UTC day, UTC month, or in total")]


@budgets.command("set")
def set_budget(
    scope: Annotated[Literal["org", "team", "key"], typer.Argument(help="What the budget is on")],
    scope_id: ScopeId,
    limit_usd: Annotated[Decimal, typer.Option("--usd", help="The limit in US dollars")],
    period: Period = "month",
    config: ConfigOption = None,
) -> None:
    """Create or change a budget."""
    body = spec(BudgetSet, scope=scope, scope_id=scope_id, period=period, limit_usd=limit_usd)
    record = call(config, lambda ctx, actor: admin.set_budget(ctx, actor, body))
    Console().print(f"Budget on {scope} {scope_id}: {dollars(record.limit_micros)} per {period}.")


@budgets.command("delete")
def delete_budget(
    scope: Annotated[Literal["org", "team", "key"], typer.Argument(help="What the budget is on")],
    scope_id: ScopeId,
    period: Period = "month",
    config: ConfigOption = None,
) -> None:
    """Remove a budget."""
    ref = spec(BudgetRef, scope=scope, scope_id=scope_id, period=period)
    call(config, lambda ctx, actor: admin.delete_budget(ctx, actor, ref))
    Console().print(f"Removed the {period} budget on {scope} {scope_id}.")


@budgets.command("list")
def list_budgets(config: ConfigOption = None) -> None:
    """List budgets with what is spent and reserved in their current period."""
    table = Table("scope", "id", "period", "limit", "spent", "reserved", "remaining", title="Budgets")
    for s in call(config, admin.list_budgets):
        b = s.budget
        table.add_row(
            b.scope,
            b.scope_id,
            b.period,
            dollars(b.limit_micros),
            dollars(s.spent_micros),
            dollars(s.reserved_micros),
            dollars(s.remaining_micros),
        )
    Console().print(table)


LimitScope = Annotated[Literal["key", "team", "model"], typer.Argument(help="What the limit is on")]


@limits.command("set")
def set_rate_limit(
    scope: LimitScope,
    scope_id: ScopeId,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute (prompt and output)")] = None,
    max_concurrent: Annotated[int | None, typer.Option(help="Requests in flight at once (all replicas)")] = None,
    config: ConfigOption = None,
) -> None:
    """Create or change a rate limit."""
    body = spec(RateLimitSet, scope=scope, scope_id=scope_id, rpm=rpm, tpm=tpm, max_concurrent=max_concurrent)
    call(config, lambda ctx, actor: admin.set_rate_limit(ctx, actor, body))
    Console().print(
        f"Rate limit on {scope} {scope_id}: {rpm or '-'} requests, {tpm or '-'} tokens per minute, "
        f"{max_concurrent or '-'} in flight."
    )


@limits.command("delete")
def delete_rate_limit(scope: LimitScope, scope_id: ScopeId, config: ConfigOption = None) -> None:
    """Remove a rate limit."""
    ref = spec(RateLimitRef, scope=scope, scope_id=scope_id)
    call(config, lambda ctx, actor: admin.delete_rate_limit(ctx, actor, ref))
    Console().print(f"Removed the rate limit on {scope} {scope_id}.")


@limits.command("list")
def list_rate_limits(config: ConfigOption = None) -> None:
    """List rate limits."""
    table = Table("scope", "id", "rpm", "tpm", "in flight", title="Rate limits")
    for r in call(config, admin.list_rate_limits):
        table.add_row(r.scope, r.scope_id, str(r.rpm or "-"), str(r.tpm or "-"), str(r.max_concurrent or "-"))
    Console().print(table)
