"""Admin endpoints for owners, agents and the kill switch (`/admin/owners`, `/admin/agents`, `/admin/halts`).

Owners and agents are the admin's (reads also an admin_read key's). Halting takes the admin key or a
governance key; lifting a halt takes a governance key alone (see `admin.agents`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from interlock.admin import AdminContext
from interlock.admin import agents as services
from interlock.admin.agents import AgentCreate as AgentCreate  # api/openapi.py documents the bodies from here
from interlock.admin.agents import HaltSet as HaltSet
from interlock.admin.agents import OwnerCreate as OwnerCreate
from interlock.agents.runs import RunCaps
from interlock.api import approvals
from interlock.api.admin import body, caller, key_view
from interlock.api.http import JSONResponse, validate
from interlock.audit.log import AuditEvent
from interlock.auth.keys import Principal
from interlock.errors import Forbidden
from interlock.store.agent_queries import AgentRecord

Status = Literal["active", "suspended", "removed"]


def agent_view(agent: AgentRecord) -> dict[str, Any]:
    """An agent as shown to admins (its policy and caps as JSON, not strings)."""
    view = asdict(agent)
    view["models"] = list(agent.models)
    view["policy"] = orjson.loads(agent.policy)
    view["caps"] = RunCaps.model_validate_json(agent.caps or "{}").model_dump()  # with the defaults in force
    return view


async def create_owner(request: Request) -> Response:
    """POST /admin/owners."""
    ctx, actor = await caller(request)
    owner = await services.create_owner(ctx, actor, validate(OwnerCreate, await body(request)))
    return JSONResponse(asdict(owner), status_code=201)


async def list_owners(request: Request) -> Response:
    """GET /admin/owners."""
    ctx, actor = await caller(request)
    return JSONResponse({"object": "list", "data": [asdict(o) for o in await services.list_owners(ctx, actor)]})


def _owner_status(status: Status) -> Any:
    async def handler(request: Request) -> Response:
        ctx, actor = await caller(request)
        owner = await services.set_owner_status(ctx, actor, request.path_params["owner_id"], status)
        return JSONResponse(asdict(owner))

    return handler


suspend_owner, resume_owner, remove_owner = (_owner_status(s) for s in ("suspended", "active", "removed"))


async def create_agent(request: Request) -> Response:
    """POST /admin/agents: the agent and its key (shown once)."""
    ctx, actor = await caller(request)
    created = await services.create_agent(ctx, actor, validate(AgentCreate, await body(request)))
    return JSONResponse({**agent_view(created.agent), "key": created.token, "key_id": created.key.id}, status_code=201)


async def list_agents(request: Request) -> Response:
    """GET /admin/agents."""
    ctx, actor = await caller(request)
    return JSONResponse({"object": "list", "data": [agent_view(a) for a in await services.list_agents(ctx, actor)]})


async def show_agent(request: Request) -> Response:
    """GET /admin/agents/{agent_id}: the agent, its keys and whether a halt covers it."""
    ctx, actor = await caller(request)
    agent, keys = await services.show_agent(ctx, actor, request.path_params["agent_id"])
    halt = ctx.keys.agents.halt_of(agent)
    return JSONResponse(
        {**agent_view(agent), "keys": [key_view(k) for k in keys], "halt": asdict(halt) if halt else None}
    )


def _agent_status(status: Status) -> Any:
    async def handler(request: Request) -> Response:
        ctx, actor = await caller(request)
        agent = await services.set_agent_status(ctx, actor, request.path_params["agent_id"], status)
        return JSONResponse(agent_view(agent))

    return handler


suspend_agent, resume_agent, remove_agent = (_agent_status(s) for s in ("suspended", "active", "removed"))


async def set_caps(request: Request) -> Response:
    """PUT /admin/agents/{agent_id}/caps: replace the agent's per-run caps (`RunCaps`)."""
    ctx, actor = await caller(request)
    caps = validate(RunCaps, await body(request))
    return JSONResponse(agent_view(await services.set_caps(ctx, actor, request.path_params["agent_id"], caps)))


def _governance_role(principal: Principal, request: Request) -> None:
    """Any key that may use the kill switch: the admin, a governance key, or an admin_read key for a GET."""
    if not (principal.is_admin or principal.governance or (principal.admin_read and request.method == "GET")):
        raise Forbidden("the kill switch needs a governance key or the admin key", code="governance_required")


async def _governance_caller(request: Request) -> tuple[AdminContext, Principal]:
    """The caller of a halt endpoint (the services check the role again; refusals are audited)."""
    return await caller(request, _governance_role)


async def halt(request: Request) -> Response:
    """POST /admin/halts: halt one agent, an owner's agents, or all."""
    ctx, actor = await _governance_caller(request)
    record = await services.halt(ctx, actor, validate(HaltSet, await body(request)))
    return JSONResponse(asdict(record), status_code=201)


async def resume(request: Request) -> Response:
    """POST /admin/halts/resume: lift a halt (a governance key only)."""
    ctx, actor = await _governance_caller(request)
    spec = validate(HaltSet, await body(request))
    try:
        await services.resume(ctx, actor, spec)
    except Forbidden as exc:
        request.app.state.interlock.audit.record(
            AuditEvent.denial(
                "POST /admin/halts/resume", actor_id=actor.key_id, actor_name=actor.name, reason=exc.message,
                status=exc.status,
            )
        )  # fmt: skip
        raise
    return JSONResponse({"scope": spec.scope, "id": spec.id, "resumed": True})


async def list_halts(request: Request) -> Response:
    """GET /admin/halts."""
    ctx, actor = await _governance_caller(request)
    return JSONResponse({"object": "list", "data": [asdict(h) for h in await services.list_halts(ctx, actor)]})


ROUTES = [
    Route("/admin/owners", create_owner, methods=["POST"]),
    Route("/admin/owners", list_owners, methods=["GET"]),
    Route("/admin/owners/{owner_id}/suspend", suspend_owner, methods=["POST"]),
    Route("/admin/owners/{owner_id}/resume", resume_owner, methods=["POST"]),
    Route("/admin/owners/{owner_id}/remove", remove_owner, methods=["POST"]),
    Route("/admin/agents", create_agent, methods=["POST"]),
    Route("/admin/agents", list_agents, methods=["GET"]),
    Route("/admin/agents/{agent_id}", show_agent, methods=["GET"]),
    Route("/admin/agents/{agent_id}/suspend", suspend_agent, methods=["POST"]),
    Route("/admin/agents/{agent_id}/resume", resume_agent, methods=["POST"]),
    Route("/admin/agents/{agent_id}/remove", remove_agent, methods=["POST"]),
    Route("/admin/agents/{agent_id}/caps", set_caps, methods=["PUT"]),
    Route("/admin/halts", halt, methods=["POST"]),
    Route("/admin/halts", list_halts, methods=["GET"]),
    Route("/admin/halts/resume", resume, methods=["POST"]),
    *approvals.ROUTES,
]
