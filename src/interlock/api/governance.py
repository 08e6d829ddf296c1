"""Admin endpoints for the hierarchy (orgs, teams), budgets and rate limits: parse, call a service, render."""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import Response

from interlock import admin as services
from interlock.admin import (
    BudgetRef,
    BudgetSet,
    GuardrailRef,
    GuardrailSet,
    OrgCreate,
    RateLimitRef,
    RateLimitSet,
    TeamCreate,
)
from interlock.api.admin import body, caller, listing, query
from interlock.api.http import JSONResponse, validate

DELETED = {"deleted": True}


async def create_org(request: Request) -> Response:
    """POST /admin/orgs."""
    ctx, actor = await caller(request)
    org = await services.create_org(ctx, actor, validate(OrgCreate, await body(request)))
    return JSONResponse(asdict(org), status_code=201)


async def list_orgs(request: Request) -> Response:
    """GET /admin/orgs."""
    ctx, actor = await caller(request)
    return listing(await services.list_orgs(ctx, actor))


async def create_team(request: Request) -> Response:
    """POST /admin/teams."""
    ctx, actor = await caller(request)
    team = await services.create_team(ctx, actor, validate(TeamCreate, await body(request)))
    return JSONResponse(asdict(team), status_code=201)


async def list_teams(request: Request) -> Response:
    """GET /admin/teams."""
    ctx, actor = await caller(request)
    return listing(await services.list_teams(ctx, actor))


async def set_budget(request: Request) -> Response:
    """PUT /admin/budgets: create or change a budget (takes effect at once on this replica)."""
    ctx, actor = await caller(request)
    record = await services.set_budget(ctx, actor, validate(BudgetSet, await body(request)))
    return JSONResponse(asdict(record))


async def delete_budget(request: Request) -> Response:
    """DELETE /admin/budgets?scope=&scope_id=&period=."""
    ctx, actor = await caller(request)
    await services.delete_budget(ctx, actor, validate(BudgetRef, query(request)))
    return JSONResponse(DELETED)


async def list_budgets(request: Request) -> Response:
    """GET /admin/budgets: each budget with what is spent and reserved in its current period."""
    ctx, actor = await caller(request)
    data = [
        {
            **asdict(s.budget),
            "spent_micros": s.spent_micros,
            "reserved_micros": s.reserved_micros,
            "remaining_micros": s.remaining_micros,
        }
        for s in await services.list_budgets(ctx, actor)
    ]
    return JSONResponse({"object": "list", "data": data})


async def set_rate_limit(request: Request) -> Response:
    """PUT /admin/rate-limits."""
    ctx, actor = await caller(request)
    record = await services.set_rate_limit(ctx, actor, validate(RateLimitSet, await body(request)))
    return JSONResponse(asdict(record))


async def delete_rate_limit(request: Request) -> Response:
    """DELETE /admin/rate-limits?scope=&scope_id=."""
    ctx, actor = await caller(request)
    await services.delete_rate_limit(ctx, actor, validate(RateLimitRef, query(request)))
    return JSONResponse(DELETED)


async def list_rate_limits(request: Request) -> Response:
    """GET /admin/rate-limits."""
    ctx, actor = await caller(request)
    return listing(await services.list_rate_limits(ctx, actor))


async def set_guardrail_policy(request: Request) -> Response:
    """PUT /admin/guardrails: set the guardrail policy of an org, team, key or model alias."""
    ctx, actor = await caller(request)
    policy = await services.set_guardrail_policy(ctx, actor, validate(GuardrailSet, await body(request)))
    return JSONResponse(asdict(policy))


async def delete_guardrail_policy(request: Request) -> Response:
    """DELETE /admin/guardrails?scope=&scope_id=."""
    ctx, actor = await caller(request)
    await services.delete_guardrail_policy(ctx, actor, validate(GuardrailRef, query(request)))
    return JSONResponse(DELETED)


async def list_guardrail_policies(request: Request) -> Response:
    """GET /admin/guardrails: every scoped guardrail policy."""
    ctx, actor = await caller(request)
    return listing(await services.list_guardrail_policies(ctx, actor))
