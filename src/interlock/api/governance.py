"""Admin endpoints for the hierarchy (orgs, teams), budgets and rate limits. Admin key only."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from interlock.api.admin import admin_state, audit_admin
from interlock.api.http import JSONResponse, error_response, parse_json, read_body, validate
from interlock.errors import BadRequest, GatewayError, NotFound
from interlock.governance.admission import period_start
from interlock.store.records import BudgetRecord, DuplicateError, OrgRecord, RateLimitRecord, TeamRecord

MAX_BODY = 64 * 1024


class OrgCreate(BaseModel):
    """Body of POST /admin/orgs."""

    name: str = Field(min_length=1, max_length=200)


class TeamCreate(BaseModel):
    """Body of POST /admin/teams."""

    org_id: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=200)


class BudgetSet(BaseModel):
    """Body of PUT /admin/budgets: a hard limit in USD for one org, team or key."""

    scope: Literal["org", "team", "key"]
    scope_id: str = Field(min_length=1)
    period: Literal["day", "month", "total"]
    limit_usd: Decimal = Field(ge=0, max_digits=18, decimal_places=6)


class RateLimitSet(BaseModel):
    """Body of PUT /admin/rate-limits: requests and tokens per minute (null: no limit of that kind)."""

    scope: Literal["key", "team", "model"]
    scope_id: str = Field(min_length=1)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


async def create_org(request: Request) -> Response:
    """POST /admin/orgs."""
    try:
        state = await admin_state(request)
        body = validate(OrgCreate, parse_json(await read_body(request, MAX_BODY)))
        org = OrgRecord("org_" + secrets.token_hex(6), body.name, time.time())
        try:
            await state.store.insert_org(org)
        except DuplicateError:
            raise BadRequest(f"an organisation named '{body.name}' exists", param="name") from None
        await audit_admin(state, "org.create", org.id, name=org.name)
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse(asdict(org), status_code=201)


async def list_orgs(request: Request) -> Response:
    """GET /admin/orgs."""
    try:
        state = await admin_state(request)
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse({"object": "list", "data": [asdict(o) for o in await state.store.list_orgs()]})


async def create_team(request: Request) -> Response:
    """POST /admin/teams."""
    try:
        state = await admin_state(request)
        body = validate(TeamCreate, parse_json(await read_body(request, MAX_BODY)))
        if body.org_id not in {o.id for o in await state.store.list_orgs()}:
            raise NotFound(f"no organisation with id '{body.org_id}'", code="org_not_found", param="org_id")
        team = TeamRecord("team_" + secrets.token_hex(6), body.org_id, body.name, time.time())
        try:
            await state.store.insert_team(team)
        except DuplicateError:
            raise BadRequest(f"organisation '{body.org_id}' already has a team '{body.name}'", param="name") from None
        await state.keys.refresh()
        await audit_admin(state, "team.create", team.id, org_id=team.org_id, name=team.name)
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse(asdict(team), status_code=201)


async def list_teams(request: Request) -> Response:
    """GET /admin/teams."""
    try:
        state = await admin_state(request)
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse({"object": "list", "data": [asdict(t) for t in await state.store.list_teams()]})


async def _check_scope(request: Request, scope: str, scope_id: str) -> None:
    state = await admin_state(request)
    known: set[str]
    if scope == "org":
        known = {o.id for o in await state.store.list_orgs()}
    elif scope == "team":
        known = {t.id for t in await state.store.list_teams()}
    elif scope == "key":
        known = {k.id for k in await state.keys.list()}
    else:
        known = set(state.gateway.routes)
    if scope_id not in known:
        raise NotFound(f"no {scope} with id '{scope_id}'", code=f"{scope}_not_found", param="scope_id")


async def set_budget(request: Request) -> Response:
    """PUT /admin/budgets: create or change a budget (takes effect at once on this replica)."""
    try:
        state = await admin_state(request)
        body = validate(BudgetSet, parse_json(await read_body(request, MAX_BODY)))
        await _check_scope(request, body.scope, body.scope_id)
        record = BudgetRecord(body.scope, body.scope_id, body.period, int(body.limit_usd * 1_000_000), time.time())
        await state.store.upsert_budget(record)
        await state.governance.refresh()
        await audit_admin(
            state,
            "budget.set",
            f"{record.scope}:{record.scope_id}",
            period=record.period,
            limit_micros=record.limit_micros,
        )
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse(asdict(record))


async def delete_budget(request: Request) -> Response:
    """DELETE /admin/budgets?scope=&scope_id=&period=."""
    q = request.query_params
    try:
        state = await admin_state(request)
        if q.get("scope") not in ("org", "team", "key") or q.get("period") not in ("day", "month", "total"):
            raise BadRequest("give scope (org, team or key), scope_id and period (day, month or total)")
        if not await state.store.delete_budget(q["scope"], q.get("scope_id", ""), q["period"]):  # type: ignore[arg-type]
            raise NotFound("no such budget", code="budget_not_found")
        await state.governance.refresh()
        await audit_admin(state, "budget.delete", f"{q['scope']}:{q.get('scope_id', '')}", period=q["period"])
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse({"deleted": True})


async def list_budgets(request: Request) -> Response:
    """GET /admin/budgets: each budget with what is spent and reserved in its current period."""
    try:
        state = await admin_state(request)
    except GatewayError as exc:
        return error_response(exc)
    now, data = time.time(), []
    for b in await state.store.list_budgets():
        suffix, start = period_start(b.period, now)
        name = f"budget:{b.scope}:{b.scope_id}:{suffix}"
        spent, reserved = await state.governance.counters.spent(name)
        if spent == 0 and reserved == 0:
            await state.store.flush()
            spent = await state.store.spent_since(b.scope, b.scope_id, start)
        data.append(
            {
                **asdict(b),
                "spent_micros": spent,
                "reserved_micros": reserved,
                "remaining_micros": max(0, b.limit_micros - spent - reserved),
            }
        )
    return JSONResponse({"object": "list", "data": data})


async def set_rate_limit(request: Request) -> Response:
    """PUT /admin/rate-limits."""
    try:
        state = await admin_state(request)
        body = validate(RateLimitSet, parse_json(await read_body(request, MAX_BODY)))
        if body.rpm is None and body.tpm is None:
            raise BadRequest("set 'rpm', 'tpm' or both (DELETE removes a limit)")
        await _check_scope(request, body.scope, body.scope_id)
        record = RateLimitRecord(body.scope, body.scope_id, body.rpm, body.tpm, time.time())
        await state.store.upsert_rate_limit(record)
        await state.governance.refresh()
        await audit_admin(
            state, "rate_limit.set", f"{record.scope}:{record.scope_id}", rpm=record.rpm or 0, tpm=record.tpm or 0
        )
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse(asdict(record))


async def delete_rate_limit(request: Request) -> Response:
    """DELETE /admin/rate-limits?scope=&scope_id=."""
    q = request.query_params
    try:
        state = await admin_state(request)
        if not await state.store.delete_rate_limit(q.get("scope", ""), q.get("scope_id", "")):  # type: ignore[arg-type]
            raise NotFound("no such rate limit", code="rate_limit_not_found")
        await state.governance.refresh()
        await audit_admin(state, "rate_limit.delete", f"{q.get('scope', '')}:{q.get('scope_id', '')}")
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse({"deleted": True})


async def list_rate_limits(request: Request) -> Response:
    """GET /admin/rate-limits."""
    try:
        state = await admin_state(request)
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse({"object": "list", "data": [asdict(r) for r in await state.store.list_rate_limits()]})
