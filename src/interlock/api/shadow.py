"""Admin endpoints for shadow agents: `GET /admin/shadow-agents`, `POST /admin/shadow-agents/{key_id}/adopt`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from interlock.admin import shadow as services
from interlock.admin.agents import AgentCreate
from interlock.api.admin import body, caller, key_view
from interlock.api.agents import agent_view
from interlock.api.http import JSONResponse, validate
from interlock.errors import BadRequest


def suspect_view(s: services.Suspect) -> dict[str, Any]:
    """A suspect as shown to admins: the key (never its secret), the counts and the evidence."""
    a = asdict(s.assessment)
    a["frameworks"] = list(s.assessment.frameworks)
    a["evidence"] = list(s.assessment.evidence)
    a["first_seen"] = s.assessment.first_hour * 3600
    a["last_seen"] = s.assessment.last_hour * 3600 + 3599
    return {"key": key_view(s.key), **a}


async def list_suspects(request: Request) -> Response:
    """GET /admin/shadow-agents?since_hours=N (default 168): keys whose traffic looks agentic."""
    ctx, actor = await caller(request)
    raw = request.query_params.get("since_hours", str(services.DEFAULT_WINDOW_H))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= 24 * 366:
        raise BadRequest("since_hours must be a whole number of hours from 1 to 8784", param="since_hours")
    found = await services.report(ctx, actor, int(raw))
    return JSONResponse({"object": "list", "data": [suspect_view(s) for s in found]})


async def adopt(request: Request) -> Response:
    """POST /admin/shadow-agents/{key_id}/adopt: register the key's software as an agent (the key becomes its key)."""
    ctx, actor = await caller(request)
    spec = validate(AgentCreate, await body(request))
    agent = await services.adopt(ctx, actor, request.path_params["key_id"], spec)
    return JSONResponse({**agent_view(agent), "key_id": request.path_params["key_id"]}, status_code=201)


ROUTES = [
    Route("/admin/shadow-agents", list_suspects, methods=["GET"]),
    Route("/admin/shadow-agents/{key_id}/adopt", adopt, methods=["POST"]),
]
