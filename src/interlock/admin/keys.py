"""Virtual keys: create, list, revoke, suspend and resume."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from interlock.admin.context import AdminContext, audit_action
from interlock.auth.keys import Principal, require_admin
from interlock.errors import BadRequest, NotFound
from interlock.store.records import KeyRecord

KeyStatus = Literal["active", "revoked", "expired", "suspended"]


class KeyCreate(BaseModel):
    """A key to create (the body of POST /admin/keys)."""

    name: str = Field(min_length=1, max_length=200)
    owner: str = Field(default="", max_length=200)
    models: list[str] = Field(default_factory=list)
    expires_at: float | None = Field(default=None, description="expiry as epoch seconds")
    expires_in_days: float | None = Field(default=None, gt=0)
    restricted: bool = Field(default=False, description="data residency: only local/sovereign deployments")
    cache_ttl_s: int = Field(default=0, ge=0, le=30 * 86400, description="response cache TTL; 0 = off")
    team_id: str | None = Field(default=None, description="the team the key belongs to (budgets roll up)")
    role: Literal["", "admin_read", "governance"] = Field(
        default="", description="'admin_read': may read the admin API; 'governance': may halt and resume agents"
    )
    owner_id: str | None = Field(
        default=None, description="a person's own key (own_...): it approves their agents' calls and mints their tokens"
    )


class KeySuspend(BaseModel):
    """Why a key is suspended (the body of POST /admin/keys/{id}/suspend)."""

    reason: str = Field(default="", max_length=500)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: its record and the plaintext token, shown this once and never stored."""

    record: KeyRecord
    token: str


def key_status(key: KeyRecord, now: float | None = None) -> KeyStatus:
    """Whether a key is usable now, and if not why (revocation wins over expiry over suspension)."""
    now = time.time() if now is None else now
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    if key.suspended_at is not None and key.suspended_at <= now:
        return "suspended"
    return "active"


async def create_key(ctx: AdminContext, actor: Principal, spec: KeyCreate) -> CreatedKey:
    """Create a key scoped to known models (or tags), optionally in a team."""
    require_admin(actor)
    unknown = [m for m in spec.models if not m.startswith("tag:") and not ctx.knows_model(m)]
    if unknown:
        raise BadRequest(f"unknown model(s) in 'models': {', '.join(unknown)}", param="models")
    if spec.owner_id is not None:
        await ctx.keys.refresh()
        owner = ctx.keys.agents.owners.get(spec.owner_id)
        if owner is None or owner.status != "active":
            raise BadRequest(f"no active owner with id '{spec.owner_id}'", param="owner_id")
    expires = spec.expires_at
    if spec.expires_in_days is not None:
        expires = time.time() + spec.expires_in_days * 86400
    record, token = await ctx.keys.create(
        spec.name,
        spec.owner,
        tuple(spec.models),
        expires,
        restricted=spec.restricted,
        cache_ttl_s=spec.cache_ttl_s,
        team_id=spec.team_id,
        role=spec.role,
        owner_id=spec.owner_id,
    )
    await audit_action(
        ctx,
        actor,
        "key.create",
        record.id,
        name=record.name,
        models=",".join(record.models),
        team_id=record.team_id or "",
        restricted=bool(record.residency),
        owner_id=record.owner_id or "",
    )
    return CreatedKey(record, token)


async def list_keys(ctx: AdminContext, actor: Principal) -> list[KeyRecord]:
    """Every key (records hold the hash, never the key)."""
    require_admin(actor, write=False)
    return await ctx.keys.list()


async def revoke_key(ctx: AdminContext, actor: Principal, key_id: str) -> None:
    """Revoke a key: at once in this process, within the key refresh interval elsewhere."""
    require_admin(actor)
    if not await ctx.keys.revoke(key_id):
        raise NotFound(f"no active key with id '{key_id}'", code="key_not_found")
    await audit_action(ctx, actor, "key.revoke", key_id)


async def suspend_key(ctx: AdminContext, actor: Principal, key_id: str, spec: KeySuspend) -> None:
    """Suspend a key (reversible with `resume_key`)."""
    require_admin(actor)
    if not await ctx.keys.suspend(key_id, spec.reason or "by an admin"):
        raise NotFound(f"no key with id '{key_id}'", code="key_not_found")
    await audit_action(ctx, actor, "key.suspend", key_id, reason=spec.reason)


async def resume_key(ctx: AdminContext, actor: Principal, key_id: str) -> None:
    """Lift a key's suspension."""
    require_admin(actor)
    if not await ctx.keys.resume(key_id):
        raise NotFound(f"no key with id '{key_id}'", code="key_not_found")
    await audit_action(ctx, actor, "key.resume", key_id)
