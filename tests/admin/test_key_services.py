"""create_key, list_keys, revoke_key, suspend_key, resume_key: validated, in the key cache at once, audited."""

from __future__ import annotations

import time

import pytest

from interlock import admin
from interlock.admin import AdminContext, KeyCreate, KeySuspend
from interlock.auth.keys import Principal
from interlock.errors import BadRequest, Forbidden, NotFound, Unauthorized
from tests.admin.conftest import Entries


async def test_a_created_key_authenticates_at_once_and_is_audited(
    ctx: AdminContext, operator: Principal, entries: Entries
) -> None:
    created = await admin.create_key(ctx, operator, KeyCreate(name="app", models=["echo", "tag:local"]))
    principal = await ctx.keys.authenticate(created.token)
    assert principal.key_id == created.record.id and principal.models == ("echo", "tag:local")
    assert created.token not in repr(created.record)
    [entry] = await entries()
    assert (entry.action, entry.target, entry.actor_name, entry.actor_id) == (
        "key.create",
        created.record.id,
        "cli:ana",
        None,
    )
    assert entry.metadata_dict()["models"] == "echo,tag:local" and created.token not in repr(entry)


async def test_create_key_refuses_unknown_models_and_teams(
    ctx: AdminContext, operator: Principal, entries: Entries
) -> None:
    with pytest.raises(BadRequest, match=r"unknown model.*nope") as bad:
        await admin.create_key(ctx, operator, KeyCreate(name="x", models=["echo", "nope"]))
    assert bad.value.param == "models"
    with pytest.raises(BadRequest, match="no team"):
        await admin.create_key(ctx, operator, KeyCreate(name="x", team_id="team_nope"))
    assert await admin.list_keys(ctx, operator) == [] and await entries() == []


async def test_expiry_in_days(ctx: AdminContext, operator: Principal) -> None:
    created = await admin.create_key(ctx, operator, KeyCreate(name="x", expires_in_days=2))
    assert created.record.expires_at is not None
    assert abs(created.record.expires_at - (time.time() + 2 * 86400)) < 60
    assert admin.key_status(created.record) == "active"
    assert admin.key_status(created.record, now=created.record.expires_at) == "expired"


async def test_revoke_takes_effect_at_once(ctx: AdminContext, operator: Principal, entries: Entries) -> None:
    created = await admin.create_key(ctx, operator, KeyCreate(name="x"))
    await admin.revoke_key(ctx, operator, created.record.id)
    with pytest.raises(Unauthorized, match="revoked"):
        await ctx.keys.authenticate(created.token)
    with pytest.raises(NotFound, match="no active key") as again:
        await admin.revoke_key(ctx, operator, created.record.id)
    assert again.value.code == "key_not_found"
    [key] = await admin.list_keys(ctx, operator)
    assert admin.key_status(key) == "revoked"
    assert [e.action for e in await entries()] == ["key.create", "key.revoke"]


async def test_suspend_and_resume(ctx: AdminContext, operator: Principal, entries: Entries) -> None:
    created = await admin.create_key(ctx, operator, KeyCreate(name="x"))
    await admin.suspend_key(ctx, operator, created.record.id, KeySuspend(reason="looping"))
    with pytest.raises(Forbidden, match="looping"):
        await ctx.keys.authenticate(created.token)
    [key] = await admin.list_keys(ctx, operator)
    assert admin.key_status(key) == "suspended"
    await admin.resume_key(ctx, operator, created.record.id)
    assert (await ctx.keys.authenticate(created.token)).key_id == created.record.id
    with pytest.raises(NotFound):
        await admin.suspend_key(ctx, operator, "key_nope", KeySuspend())
    with pytest.raises(NotFound):
        await admin.resume_key(ctx, operator, "key_nope")
    actions = [(e.action, e.metadata_dict().get("reason")) for e in await entries()]
    assert actions == [("key.create", None), ("key.suspend", "looping"), ("key.resume", None)]


async def test_roles(ctx: AdminContext, reader: Principal, user: Principal, entries: Entries) -> None:
    assert await admin.list_keys(ctx, reader) == []
    with pytest.raises(Forbidden) as read_only:
        await admin.create_key(ctx, reader, KeyCreate(name="x"))
    assert read_only.value.code == "admin_read_only"
    for call in (admin.list_keys(ctx, user), admin.revoke_key(ctx, user, "key_x")):
        with pytest.raises(Forbidden) as denied:
            await call
        assert denied.value.code == "admin_required"
    assert await entries() == []  # a refused call changes nothing; its caller's layer audits the denial
