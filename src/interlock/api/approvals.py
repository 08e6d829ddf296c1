"""Admin endpoints for approvals (`/admin/approvals`) and agent tokens (`/admin/agents/{id}/tokens`).

Approvals are decided by the agent's owner (their own key), a governance key or the admin; tokens are minted
by the owner or the admin (see `admin.approvals`, `admin.tokens`). The routes join `api.agents.ROUTES`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from interlock.admin import approvals as services
from interlock.admin import tokens
from interlock.admin.approvals import ApprovalDecision as ApprovalDecision  # api/openapi.py documents the bodies
from interlock.admin.approvals import ApprovalQuery
from interlock.admin.tokens import TokenMint as TokenMint
from interlock.api.admin import MAX_BODY, caller, query
from interlock.api.http import JSONResponse, parse_json, read_body, validate
from interlock.auth.keys import Principal
from interlock.errors import Forbidden
from interlock.store.approval_queries import ApprovalRecord, TokenRecord


def approval_view(record: ApprovalRecord) -> dict[str, Any]:
    """An approval request as shown to approvers, with its status as people see it ("expired")."""
    return {**asdict(record), "status": services.shown_status(record)}


def token_view(record: TokenRecord) -> dict[str, Any]:
    """A minted token's record (never the token)."""
    return asdict(record)


def _approver(principal: Principal, request: Request) -> None:
    services.require_approver(principal)


def _token_role(principal: Principal, request: Request) -> None:
    """The admin, an admin_read key (GET), a governance key, or an owner's own key; the services check more."""
    if principal.agent_id is None and (
        principal.is_admin or principal.governance or principal.owner_id or principal.admin_read
    ):
        return
    raise Forbidden("agent tokens need the agent owner's own key or the admin key", code="owner_required")


async def _optional_body(request: Request) -> dict[str, Any]:
    raw = await read_body(request, MAX_BODY)
    return parse_json(raw) if raw.strip() else {}


async def list_approvals(request: Request) -> Response:
    """GET /admin/approvals?status=pending|approved|denied|consumed|expired&agent_id=agt_..."""
    ctx, actor = await caller(request, _approver)
    params = query(request)
    if "agent" in params:
        params["agent_id"] = params.pop("agent")
    found = await services.list_approvals(ctx, actor, validate(ApprovalQuery, params))
    return JSONResponse({"object": "list", "data": [approval_view(r) for r in found]})


async def show_approval(request: Request) -> Response:
    """GET /admin/approvals/{approval_id}."""
    ctx, actor = await caller(request, _approver)
    return JSONResponse(approval_view(await services.show_approval(ctx, actor, request.path_params["approval_id"])))


def _decide(approve: bool) -> Any:
    async def handler(request: Request) -> Response:
        ctx, actor = await caller(request, _approver)
        spec = validate(ApprovalDecision, await _optional_body(request))
        record = await services.decide(ctx, actor, request.path_params["approval_id"], approve, spec)
        return JSONResponse(approval_view(record))

    return handler


approve, deny = _decide(True), _decide(False)


async def mint_token(request: Request) -> Response:
    """POST /admin/agents/{agent_id}/tokens: a signed token for the agent (shown once)."""
    ctx, actor = await caller(request, _token_role)
    spec = validate(TokenMint, await _optional_body(request))
    minted = await tokens.mint_token(ctx, actor, request.path_params["agent_id"], spec)
    return JSONResponse({**token_view(minted.record), "token": minted.token}, status_code=201)


async def list_tokens(request: Request) -> Response:
    """GET /admin/agents/{agent_id}/tokens."""
    ctx, actor = await caller(request, _token_role)
    found = await tokens.list_tokens(ctx, actor, request.path_params["agent_id"])
    return JSONResponse({"object": "list", "data": [token_view(t) for t in found]})


async def revoke_token(request: Request) -> Response:
    """POST /admin/agents/{agent_id}/tokens/{token_id}/revoke."""
    ctx, actor = await caller(request, _token_role)
    await tokens.revoke_token(ctx, actor, request.path_params["agent_id"], token_id := request.path_params["token_id"])
    return JSONResponse({"id": token_id, "revoked": True})


ROUTES = [
    Route("/admin/approvals", list_approvals, methods=["GET"]),
    Route("/admin/approvals/{approval_id}", show_approval, methods=["GET"]),
    Route("/admin/approvals/{approval_id}/approve", approve, methods=["POST"]),
    Route("/admin/approvals/{approval_id}/deny", deny, methods=["POST"]),
    Route("/admin/agents/{agent_id}/tokens", mint_token, methods=["POST"]),
    Route("/admin/agents/{agent_id}/tokens", list_tokens, methods=["GET"]),
    Route("/admin/agents/{agent_id}/tokens/{token_id}/revoke", revoke_token, methods=["POST"]),
]
