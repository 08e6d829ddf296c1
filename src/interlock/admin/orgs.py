"""The hierarchy budgets roll up through: organisations, and the teams inside them."""

from __future__ import annotations

import secrets
import time

from pydantic import BaseModel, Field

from interlock.admin.context import AdminContext, audit_action
from interlock.auth.keys import Principal, require_admin
from interlock.errors import BadRequest, NotFound
from interlock.store.records import DuplicateError, OrgRecord, TeamRecord


class OrgCreate(BaseModel):
    """An organisation to create (the body of POST /admin/orgs)."""

    name: str = Field(min_length=1, max_length=200)


class TeamCreate(BaseModel):
    """A team to create inside an organisation (the body of POST /admin/teams)."""

    org_id: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=200)


async def create_org(ctx: AdminContext, actor: Principal, spec: OrgCreate) -> OrgRecord:
    """Create an organisation; names are unique."""
    require_admin(actor)
    org = OrgRecord("org_" + secrets.token_hex(6), spec.name, time.time())
    try:
        await ctx.store.insert_org(org)
    except DuplicateError:
        raise BadRequest(f"an organisation named '{spec.name}' exists", param="name") from None
    await audit_action(ctx, actor, "org.create", org.id, name=org.name)
    return org


async def list_orgs(ctx: AdminContext, actor: Principal) -> list[OrgRecord]:
    """Every organisation."""
    require_admin(actor, write=False)
    return await ctx.store.list_orgs()


async def create_team(ctx: AdminContext, actor: Principal, spec: TeamCreate) -> TeamRecord:
    """Create a team in an existing organisation; names are unique within it."""
    require_admin(actor)
    if spec.org_id not in {o.id for o in await ctx.store.list_orgs()}:
        raise NotFound(f"no organisation with id '{spec.org_id}'", code="org_not_found", param="org_id")
    team = TeamRecord("team_" + secrets.token_hex(6), spec.org_id, spec.name, time.time())
    try:
        await ctx.store.insert_team(team)
    except DuplicateError:
        raise BadRequest(f"organisation '{spec.org_id}' already has a team '{spec.name}'", param="name") from None
    await ctx.keys.refresh()  # keys in the team resolve to its org at once
    await audit_action(ctx, actor, "team.create", team.id, org_id=team.org_id, name=team.name)
    return team


async def list_teams(ctx: AdminContext, actor: Principal) -> list[TeamRecord]:
    """Every team."""
    require_admin(actor, write=False)
    return await ctx.store.list_teams()
