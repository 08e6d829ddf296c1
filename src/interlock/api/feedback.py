"""POST /v1/feedback: a key gives a declared metric's value (and optionally a comment or a corrected answer)
on one of its requests or runs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from interlock.admin.flywheel import FeedbackReport, record_feedback
from interlock.api.admin import admin_context, body
from interlock.api.http import JSONResponse, bearer_token, validate
from interlock.api.openai import refuse
from interlock.api.state import AppState
from interlock.errors import GatewayError


async def feedback(request: Request) -> Response:
    """POST /v1/feedback: 201 with the stored feedback."""
    state: AppState = request.app.state.interlock
    try:
        principal = await state.keys.authenticate(bearer_token(request))
    except GatewayError as exc:
        return refuse(state, request, exc)
    ctx = admin_context(state)
    record = await record_feedback(ctx, principal, validate(FeedbackReport, await body(request)))
    view = {
        "object": "feedback",
        "id": record.id,
        "request_id" if record.kind == "request" else "run_id": record.subject_id,
        "metric": record.metric,
        "value": record.value,
    }
    return JSONResponse(view, status_code=201)
