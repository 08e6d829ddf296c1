"""Guardrails: the scoped policies (set and removed through `interlock.admin.guardrails`) and verdicts over time.

Verdicts are counted from the audit log's `guardrail.verdict` entries (one per request a guardrail acted
on), so the chart shows what the tamper-evident record shows.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from interlock.admin import GuardrailRef, GuardrailSet, delete_guardrail_policy, list_guardrail_policies
from interlock.admin import set_guardrail_policy as set_policy
from interlock.auth.keys import require_admin
from interlock.errors import BadRequest
from interlock.ui import charts
from interlock.ui.records import AUDIT_SCAN
from interlock.ui.web import View, acting, parse, render, viewer


async def _page(request: Request, view: View, **notice: Any) -> Response:
    policies = await list_guardrail_policies(view.ctx, view.principal)
    shown = [(p, orjson.dumps(p.rules, option=orjson.OPT_INDENT_2).decode()) for p in policies]
    enabled = view.settings.guardrails.enabled
    return render(request, "guardrails.html", view, policies=shown, enabled=enabled, **notice)


async def guardrails_page(request: Request) -> Response:
    """GET /ui/guardrails; its chart loads /ui/api/guardrails."""
    return await _page(request, await viewer(request))


async def set_guardrail_policy(request: Request) -> Response:
    """POST /ui/guardrails: scope, scope_id and the policy as JSON in `rules`."""
    view, form = await acting(request)
    try:
        rules = orjson.loads(form.get("rules") or "{}")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"'rules' is not JSON: {exc}", param="rules") from None
    policy = await set_policy(view.ctx, view.principal, parse(GuardrailSet, form, rules=rules))
    return await _page(request, view, notice=f"guardrail policy on {policy.scope} {policy.scope_id} set")


async def delete_policy(request: Request) -> Response:
    """POST /ui/guardrails/delete."""
    view, form = await acting(request)
    ref = parse(GuardrailRef, form)
    await delete_guardrail_policy(view.ctx, view.principal, ref)
    return await _page(request, view, notice=f"guardrail policy on {ref.scope} {ref.scope_id} removed")


async def verdict_data(request: Request) -> Response:
    """GET /ui/api/guardrails: findings acted on per day and action, and blocked requests per day."""
    view = await viewer(request)
    require_admin(view.principal, write=False)
    entries = await view.services.audit.recent(AUDIT_SCAN)
    return JSONResponse(charts.guardrail_verdicts(entries), headers={"cache-control": "no-store"})
