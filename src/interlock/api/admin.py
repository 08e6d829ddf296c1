"""Admin endpoints: virtual keys and spend. Every call needs the admin key."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from interlock.api.http import JSONResponse, bearer_token, error_response, parse_json, read_body, validate
from interlock.api.state import AppState
from interlock.errors import BadRequest, GatewayError, NotFound
from interlock.audit.log import AuditEvent
from interlock.auth.keys import require_admin
from interlock.gateway.pricing import savings_summary
from interlock.store.records import KeyRecord


class KeyCreate(BaseModel):
    """Body of POST /admin/keys."""

    name: str = Field(min_length=1, max_length=200)
    owner: str = Field(default="", max_length=200)
    models: list[str] = Field(default_factory=list)
    expires_at: float | None = Field(default=None, description="expiry as epoch seconds")
    expires_in_days: float | None = Field(default=None, gt=0)
    restricted: bool = Field(default=False, description="data residency: only local/sovereign deployments")
    cache_ttl_s: int = Field(default=0, ge=0, le=30 * 86400, description="response cache TTL; 0 = off")
    team_id: str | None = Field(default=None, description="the team the key belongs to (budgets roll up)")
    role: Literal["", "admin_read"] = Field(default="", description="'admin_read': may read the admin API")


def key_view(key: KeyRecord) -> dict[str, Any]:
    """A key as shown to admins: never the hash."""
    view = asdict(key)
    del view["hash"]
    view["models"] = list(key.models)
    view["status"] = (
        "revoked"
        if key.revoked_at is not None
        else "expired"
        if key.expires_at is not None and key.expires_at <= time.time()
        else "active"
    )
    return view


async def admin_state(request: Request) -> AppState:
    """The app state, after checking that the caller is the admin."""
    state: AppState = request.app.state.interlock
    principal = None
    try:
        principal = await state.keys.authenticate(bearer_token(request))
        require_admin(principal, write=request.method != "GET")
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
    return state


async def audit_admin(state: AppState, action: str, target: str, **metadata: str | int | float | bool) -> None:
    """Record an admin action; returns once it is committed and covered by a signed checkpoint."""
    await state.audit.append(AuditEvent.admin(action, actor_id=None, actor_name="admin", target=target, **metadata))


async def create_key(request: Request) -> Response:
    """POST /admin/keys: create a key; the plaintext is in this response only."""
    try:
        state = await admin_state(request)
        body = validate(KeyCreate, parse_json(await read_body(request, 64 * 1024)))
        unknown = [m for m in body.models if not m.startswith("tag:") and m not in state.gateway.routes]
        if unknown:
            raise BadRequest(f"unknown model(s) in 'models': {', '.join(unknown)}", param="models")
        expires = body.expires_at
        if body.expires_in_days is not None:
            expires = time.time() + body.expires_in_days * 86400
        record, token = await state.keys.create(
            body.name,
            body.owner,
            tuple(body.models),
            expires,
            restricted=body.restricted,
            cache_ttl_s=body.cache_ttl_s,
            team_id=body.team_id,
            role=body.role,
        )
        await audit_admin(
            state,
            "key.create",
            record.id,
            name=record.name,
            models=",".join(record.models),
            team_id=record.team_id or "",
            restricted=bool(record.residency),
        )
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse({**key_view(record), "key": token}, status_code=201)


async def list_keys(request: Request) -> Response:
    """GET /admin/keys."""
    try:
        state = await admin_state(request)
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse({"object": "list", "data": [key_view(k) for k in await state.keys.list()]})


async def revoke_key(request: Request) -> Response:
    """POST /admin/keys/{key_id}/revoke."""
    key_id = request.path_params["key_id"]
    try:
        state = await admin_state(request)
        if not await state.keys.revoke(key_id):
            raise NotFound(f"no active key with id '{key_id}'", code="key_not_found")
        await audit_admin(state, "key.revoke", key_id)
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse({"id": key_id, "revoked": True})


async def suspend_key(request: Request) -> Response:
    """POST /admin/keys/{key_id}/suspend (body: {"reason": "..."}) and /resume: reversible."""
    key_id, action = request.path_params["key_id"], request.url.path.rsplit("/", 1)[1]
    try:
        state = await admin_state(request)
        if action == "suspend":
            raw = await read_body(request, 64 * 1024)
            reason = str(parse_json(raw).get("reason", "")) if raw else ""
            done = await state.keys.suspend(key_id, reason or "by an admin")
        else:
            done = await state.keys.resume(key_id)
        if not done:
            raise NotFound(f"no key with id '{key_id}'", code="key_not_found")
        await audit_admin(state, f"key.{action}", key_id)
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse({"id": key_id, "suspended": action == "suspend"})


async def spend(request: Request) -> Response:
    """GET /admin/spend?group=key|model|day&since=EPOCH."""
    try:
        state = await admin_state(request)
        group = request.query_params.get("group", "model")
        if group not in ("org", "team", "key", "model", "day"):
            raise BadRequest("'group' must be one of: org, team, key, model, day", param="group")
        since_raw = request.query_params.get("since")
        try:
            since = float(since_raw) if since_raw else None
        except ValueError:
            raise BadRequest("'since' must be epoch seconds", param="since") from None
        await state.store.flush()
        rows = await state.store.spend(group, since)  # type: ignore[arg-type]
    except GatewayError as exc:
        return error_response(exc)
    summary = savings_summary(rows, state.settings.governance.reference_model)
    return JSONResponse({"object": "list", "group": group, "data": [asdict(r) for r in rows], "summary": summary})
