"""GET /v1/usage?since=EPOCH: the calling key's own requests, tokens, cost and remaining budgets."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from interlock.admin.usage import BudgetUse, UsageQuery, key_usage
from interlock.api.admin import admin_context, query
from interlock.api.http import JSONResponse, bearer_token, validate
from interlock.api.openai import refuse
from interlock.api.state import AppState
from interlock.errors import GatewayError
from interlock.store.records import SpendRow

MICROS_PER_USD = 1_000_000


def _usd(micros: int) -> float:
    """Micro-dollars as dollars, for reading (the `_micros` fields are the exact values)."""
    return round(micros / MICROS_PER_USD, 6)


def _spend(row: SpendRow) -> dict[str, Any]:
    return {
        "requests": row.requests,
        "errors": row.errors,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cost_micros": row.cost_micros,
        "cost_usd": _usd(row.cost_micros),
    }


def _budget(use: BudgetUse) -> dict[str, Any]:
    s = use.status
    return {
        "scope": s.budget.scope,
        "scope_id": s.budget.scope_id,
        "period": s.budget.period,
        "limit_micros": s.budget.limit_micros,
        "spent_micros": s.spent_micros,
        "reserved_micros": s.reserved_micros,
        "remaining_micros": s.remaining_micros,
        "limit_usd": _usd(s.budget.limit_micros),
        "remaining_usd": _usd(s.remaining_micros),
        "resets_at": use.resets_at,
    }


async def usage(request: Request) -> Response:
    """GET /v1/usage: any valid key, about itself (the admin key: the admin key's own requests)."""
    state: AppState = request.app.state.interlock
    try:
        principal = await state.keys.authenticate(bearer_token(request))
    except GatewayError as exc:
        return refuse(state, request, exc)
    ctx = admin_context(state)
    report = await key_usage(ctx, principal, validate(UsageQuery, query(request)))
    return JSONResponse(
        {
            "object": "usage",
            "key_id": report.key_id,
            "since": report.since,
            **_spend(report.total),
            "models": [{"model": r.group, **_spend(r)} for r in report.models],
            "budgets": [_budget(b) for b in report.budgets],
        }
    )
