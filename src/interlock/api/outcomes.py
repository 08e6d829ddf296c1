"""POST /v1/outcomes (a key reports how one of its requests or runs ended) and GET /admin/roi (what the
completed work cost and the labour it replaced)."""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import Response

from interlock.admin import OutcomeReport, RoiQuery, report_outcome, roi_report
from interlock.api.admin import admin_context, body, caller, query
from interlock.api.http import JSONResponse, bearer_token, validate
from interlock.api.openai import refuse
from interlock.api.state import AppState
from interlock.errors import GatewayError


async def outcomes(request: Request) -> Response:
    """POST /v1/outcomes: 201 for a new outcome, 200 when it repeats (and updates) an earlier report."""
    state: AppState = request.app.state.interlock
    try:
        principal = await state.keys.authenticate(bearer_token(request))
    except GatewayError as exc:
        return refuse(state, request, exc)
    ctx = admin_context(state)
    record, created = await report_outcome(ctx, principal, validate(OutcomeReport, await body(request)))
    view = {
        "object": "outcome",
        "request_id" if record.kind == "request" else "run_id": record.subject_id,
        "task_type": record.task_type,
        "status": record.status,
        "created": created,
    }
    return JSONResponse(view, status_code=201 if created else 200)


async def roi(request: Request) -> Response:
    """GET /admin/roi?group=task_type|team|key&since=EPOCH."""
    ctx, actor = await caller(request)
    report = await roi_report(ctx, actor, validate(RoiQuery, query(request)))
    return JSONResponse(
        {
            "object": "list",
            "group": report.group,
            "data": [asdict(r) for r in report.rows],
            "total": asdict(report.total),
            "summary": report.summary,
        }
    )
