"""GET /metrics: the Prometheus exposition, for the admin key, an `admin_read` key or the `[metrics] token`."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from interlock.api.admin import caller
from interlock.api.http import bearer_token
from interlock.api.state import AppState
from interlock.errors import NotFound


async def metrics(request: Request) -> Response:
    """The app's metrics; a refused caller gets 401/403 (audited, as on the admin API)."""
    state: AppState = request.app.state.interlock
    found = state.observability.metrics if state.observability is not None else None
    if found is None:
        raise NotFound("metrics are turned off ([metrics] enabled = false)", code="metrics_disabled")
    if not found.token_matches(bearer_token(request)):
        await caller(request)  # the admin key, or a read-only admin key (a GET needs no more)
    return Response(await found.render(), media_type=CONTENT_TYPE_LATEST)
