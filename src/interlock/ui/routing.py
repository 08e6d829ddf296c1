"""Routing: which model served the requests over time, and each learned router's decisions and strong share.

Read from the ledger (requests per day, alias asked for and deployment that served them), so the chart
covers every replica and survives restarts; the Prometheus counter `interlock_router_decisions` counts the
same decisions per process since it started. The ledger does not keep the router's score or threshold.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from interlock.auth.keys import require_admin
from interlock.errors import BadRequest
from interlock.ui import charts
from interlock.ui.web import render, state_of, viewer


async def routing_page(request: Request) -> Response:
    """GET /ui/routing; its charts load /ui/api/routing."""
    view = await viewer(request)
    return render(request, "routing.html", view, routers=state_of(request).routers)


async def routing_data(request: Request) -> Response:
    """GET /ui/api/routing?days=N (1-366, default 30): requests by serving model, router decisions per day."""
    view = await viewer(request)
    require_admin(view.principal, write=False)
    raw = request.query_params.get("days", "30")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not 1 <= int(raw) <= 366:
        raise BadRequest("'days' must be a whole number from 1 to 366", param="days")
    await view.ctx.store.flush()
    counts = await view.ctx.store.ledger_routes(time.time() - int(raw) * 86400)
    data = charts.routing(counts, state_of(request).routers)
    return JSONResponse({"days": int(raw), **data}, headers={"cache-control": "no-store"})
