"""Keys, organisations and teams, budgets and rate limits: list them, and change them through `interlock.admin`.

Each change handler is `acting` (session + CSRF), one admin service call with the signed-in principal
(which checks the role and audits the change), then the page again with a notice; the page's htmx
forms swap in its `#page` part.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from interlock import admin as services
from interlock.admin import (
    BudgetRef,
    BudgetSet,
    KeyCreate,
    KeySuspend,
    OrgCreate,
    RateLimitRef,
    RateLimitSet,
    TeamCreate,
)
from interlock.errors import NotFound
from interlock.ui.web import View, acting, parse, render, viewer


async def _keys(request: Request, view: View, **notice: Any) -> Response:
    keys = await services.list_keys(view.ctx, view.principal)
    teams = await services.list_teams(view.ctx, view.principal)
    rows = [(k, services.key_status(k)) for k in reversed(keys)]
    return render(request, "keys.html", view, keys=rows, teams=teams, models=sorted(view.settings.models), **notice)


async def keys_page(request: Request) -> Response:
    """GET /ui/keys."""
    return await _keys(request, await viewer(request))


async def create_key(request: Request) -> Response:
    """POST /ui/keys: the new key's token is shown in the notice, this once."""
    view, form = await acting(request)
    models = [m.strip() for m in form.get("models", "").split(",") if m.strip()]
    spec = parse(KeyCreate, form, models=models, restricted=form.get("restricted") == "on")
    created = await services.create_key(view.ctx, view.principal, spec)
    return await _keys(request, view, created=created)


async def key_action(request: Request) -> Response:
    """POST /ui/keys/{key_id}/{revoke|suspend|resume}."""
    view, form = await acting(request)
    key_id, action = request.path_params["key_id"], request.path_params["action"]
    if action not in ("revoke", "suspend", "resume"):
        raise NotFound(f"no key action '{action}' (revoke, suspend or resume)", code="unknown_route")
    if action == "revoke":
        await services.revoke_key(view.ctx, view.principal, key_id)
    elif action == "suspend":
        await services.suspend_key(view.ctx, view.principal, key_id, parse(KeySuspend, form))
    else:
        await services.resume_key(view.ctx, view.principal, key_id)
    return await _keys(request, view, notice=f"key {key_id}: {action}d")


async def _orgs(request: Request, view: View, **notice: Any) -> Response:
    orgs = await services.list_orgs(view.ctx, view.principal)
    teams = await services.list_teams(view.ctx, view.principal)
    names = {o.id: o.name for o in orgs}
    return render(request, "orgs.html", view, orgs=orgs, teams=teams, org_names=names, **notice)


async def orgs_page(request: Request) -> Response:
    """GET /ui/orgs."""
    return await _orgs(request, await viewer(request))


async def create_org(request: Request) -> Response:
    """POST /ui/orgs."""
    view, form = await acting(request)
    org = await services.create_org(view.ctx, view.principal, parse(OrgCreate, form))
    return await _orgs(request, view, notice=f"organisation {org.name} created ({org.id})")


async def create_team(request: Request) -> Response:
    """POST /ui/teams."""
    view, form = await acting(request)
    team = await services.create_team(view.ctx, view.principal, parse(TeamCreate, form))
    return await _orgs(request, view, notice=f"team {team.name} created ({team.id})")


async def _budgets(request: Request, view: View, **notice: Any) -> Response:
    budgets = await services.list_budgets(view.ctx, view.principal)
    limits = await services.list_rate_limits(view.ctx, view.principal)
    return render(request, "budgets.html", view, budgets=budgets, limits=limits, **notice)


async def budgets_page(request: Request) -> Response:
    """GET /ui/budgets."""
    return await _budgets(request, await viewer(request))


async def set_budget(request: Request) -> Response:
    """POST /ui/budgets."""
    view, form = await acting(request)
    record = await services.set_budget(view.ctx, view.principal, parse(BudgetSet, form))
    return await _budgets(request, view, notice=f"budget on {record.scope} {record.scope_id} ({record.period}) set")


async def delete_budget(request: Request) -> Response:
    """POST /ui/budgets/delete."""
    view, form = await acting(request)
    ref = parse(BudgetRef, form)
    await services.delete_budget(view.ctx, view.principal, ref)
    return await _budgets(request, view, notice=f"budget on {ref.scope} {ref.scope_id} ({ref.period}) removed")


async def set_rate_limit(request: Request) -> Response:
    """POST /ui/rate-limits."""
    view, form = await acting(request)
    record = await services.set_rate_limit(view.ctx, view.principal, parse(RateLimitSet, form))
    return await _budgets(request, view, notice=f"rate limit on {record.scope} {record.scope_id} set")


async def delete_rate_limit(request: Request) -> Response:
    """POST /ui/rate-limits/delete."""
    view, form = await acting(request)
    ref = parse(RateLimitRef, form)
    await services.delete_rate_limit(view.ctx, view.principal, ref)
    return await _budgets(request, view, notice=f"rate limit on {ref.scope} {ref.scope_id} removed")
