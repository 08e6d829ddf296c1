"""create_org, create_team and their lists: unique names, a team needs its org, keys see their org at once."""

from __future__ import annotations

import pytest

from interlock import admin
from interlock.admin import AdminContext, KeyCreate, OrgCreate, TeamCreate
from interlock.auth.keys import Principal
from interlock.errors import BadRequest, Forbidden, NotFound
from tests.admin.conftest import Entries


async def test_hierarchy(ctx: AdminContext, operator: Principal, entries: Entries) -> None:
    org = await admin.create_org(ctx, operator, OrgCreate(name="acme"))
    with pytest.raises(BadRequest, match="exists"):
        await admin.create_org(ctx, operator, OrgCreate(name="acme"))
    with pytest.raises(NotFound) as no_org:
        await admin.create_team(ctx, operator, TeamCreate(org_id="org_nope", name="search"))
    assert no_org.value.code == "org_not_found"
    team = await admin.create_team(ctx, operator, TeamCreate(org_id=org.id, name="search"))
    with pytest.raises(BadRequest, match="already has a team"):
        await admin.create_team(ctx, operator, TeamCreate(org_id=org.id, name="search"))
    assert await admin.list_orgs(ctx, operator) == [org]
    assert await admin.list_teams(ctx, operator) == [team]
    assert [(e.action, e.target) for e in await entries()] == [("org.create", org.id), ("team.create", team.id)]


async def test_a_key_in_a_new_team_belongs_to_its_org_at_once(ctx: AdminContext, operator: Principal) -> None:
    org = await admin.create_org(ctx, operator, OrgCreate(name="acme"))
    team = await admin.create_team(ctx, operator, TeamCreate(org_id=org.id, name="search"))
    created = await admin.create_key(ctx, operator, KeyCreate(name="svc", team_id=team.id))
    principal = await ctx.keys.authenticate(created.token)
    assert (principal.team_id, principal.org_id) == (team.id, org.id)


async def test_reads_need_a_reader_and_writes_the_admin(ctx: AdminContext, reader: Principal, user: Principal) -> None:
    assert await admin.list_orgs(ctx, reader) == [] and await admin.list_teams(ctx, reader) == []
    with pytest.raises(Forbidden):
        await admin.create_org(ctx, reader, OrgCreate(name="acme"))
    with pytest.raises(Forbidden):
        await admin.list_teams(ctx, user)
