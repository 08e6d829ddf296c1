"""Admin endpoints for virtual keys and spend, and what every admin endpoint shares.

A handler authenticates the caller (`caller`: a refused call is audited there), parses, calls an
`interlock.admin` service and renders the result. A `GatewayError` it raises becomes the error JSON in
`gateway_error`, the app's one exception handler for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from interlock import admin as services
from interlock.admin import AdminContext, KeySuspend, SpendQuery
from interlock.admin import KeyCreate as KeyCreate  # api/openapi.py documents the body from here
from interlock.api.http import JSONResponse, bearer_token, error_response, parse_json, read_body, validate
from interlock.api.state import AppState
from interlock.audit.log import AuditEvent
from interlock.auth.keys import Principal, require_admin
from interlock.errors import GatewayError
from interlock.store.records import KeyRecord

MAX_BODY = 64 * 1024


async def gateway_error(request: Request, exc: Exception) -> Response:
    """The exception handler for `GatewayError`: the error as OpenAI's JSON, with its status and headers."""
    assert isinstance(exc, GatewayError)
    return error_response(exc)


def admin_role(principal: Principal, request: Request) -> None:
    """The admin key, or for a GET an admin_read key (403 otherwise)."""
    require_admin(principal, write=request.method != "GET")


async def caller(
    request: Request, role: Callable[[Principal, Request], None] = admin_role
) -> tuple[AdminContext, Principal]:
    """The admin services and the caller, once `role` admits it here; a refusal (401, 403) is audited."""
    state: AppState = request.app.state.interlock
    principal = None
    try:
        principal = await state.keys.authenticate(bearer_token(request))
        # Checked before the body is read, so a caller without the right role never gets its input parsed.
        role(principal, request)
    except GatewayError as exc:
        state.audit.record(
            AuditEvent.denial(
                f"{request.method} {request.url.path}",
                actor_id=principal.key_id if principal else None,
                actor_name=principal.name if principal else "anonymous",
                reason=exc.message,
                status=exc.status,
            )
        )
        raise
    return admin_context(state), principal


def admin_context(state: AppState) -> AdminContext:
    """The admin services of this process, for a caller already authenticated."""
    announce = state.oversight.send if state.oversight is not None else None
    return AdminContext(
        state.settings, state.store, state.keys, state.governance, state.audit, state.guardrails, announce
    )


async def body(request: Request) -> dict[str, Any]:
    """The JSON object in the body of an admin call."""
    return parse_json(await read_body(request, MAX_BODY))


def query(request: Request) -> dict[str, Any]:
    """The query parameters of an admin call; an empty one counts as absent."""
    return {name: value for name, value in request.query_params.items() if value}


def key_view(key: KeyRecord) -> dict[str, Any]:
    """A key as shown to admins: never the hash."""
    view = asdict(key)
    del view["hash"]
    view["models"] = list(key.models)
    view["status"] = services.key_status(key)
    return view


def listing(items: list[Any]) -> Response:
    """A list of records as `{"object": "list", "data": [...]}`."""
    return JSONResponse({"object": "list", "data": [asdict(i) for i in items]})


async def create_key(request: Request) -> Response:
    """POST /admin/keys: create a key; the plaintext is in this response only."""
    ctx, actor = await caller(request)
    created = await services.create_key(ctx, actor, validate(KeyCreate, await body(request)))
    return JSONResponse({**key_view(created.record), "key": created.token}, status_code=201)


async def list_keys(request: Request) -> Response:
    """GET /admin/keys."""
    ctx, actor = await caller(request)
    return JSONResponse({"object": "list", "data": [key_view(k) for k in await services.list_keys(ctx, actor)]})


async def revoke_key(request: Request) -> Response:
    """POST /admin/keys/{key_id}/revoke."""
    ctx, actor = await caller(request)
    await services.revoke_key(ctx, actor, key_id := request.path_params["key_id"])
    return JSONResponse({"id": key_id, "revoked": True})


async def suspend_key(request: Request) -> Response:
    """POST /admin/keys/{key_id}/suspend (body, optional: {"reason": "..."}): reversible."""
    ctx, actor = await caller(request)
    raw = await read_body(request, MAX_BODY)
    spec = validate(KeySuspend, parse_json(raw)) if raw else KeySuspend()
    await services.suspend_key(ctx, actor, key_id := request.path_params["key_id"], spec)
    return JSONResponse({"id": key_id, "suspended": True})


async def resume_key(request: Request) -> Response:
    """POST /admin/keys/{key_id}/resume: lift a suspension."""
    ctx, actor = await caller(request)
    await services.resume_key(ctx, actor, key_id := request.path_params["key_id"])
    return JSONResponse({"id": key_id, "suspended": False})


async def spend(request: Request) -> Response:
    """GET /admin/spend?group=org|team|key|model|endpoint|day&since=EPOCH&endpoint=chat,responses."""
    ctx, actor = await caller(request)
    report = await services.spend_report(ctx, actor, validate(SpendQuery, query(request)))
    data = [asdict(r) for r in report.rows]
    return JSONResponse({"object": "list", "group": report.group, "data": data, "summary": report.summary})
