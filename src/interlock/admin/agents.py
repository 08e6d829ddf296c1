"""Owners and agents: register, list, show, suspend, remove; and the kill switch (halt, resume).

An agent needs an owner (a person, `OwnerRecord`); creating one also creates its key (kind "agent"),
shown once. Suspending or removing the owner stops every agent they own (authentication checks the
chain, `auth.agents`). Halts are the governance role's: an admin or a governance key may halt, only a
governance key may resume (separation of duties: the team that runs an agent cannot lift its halt).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass
from typing import Literal

from pydantic import BaseModel, Field

from interlock.admin.context import AdminContext, audit_action
from interlock.agents.policy import ToolPolicy
from interlock.agents.runs import RunCaps
from interlock.auth.keys import Principal, require_admin, require_governance
from interlock.errors import BadRequest, Forbidden, NotFound
from interlock.store.agent_queries import AgentRecord, HaltRecord, HaltScope, OwnerRecord
from interlock.store.records import KeyRecord


class OwnerCreate(BaseModel):
    """A person who answers for agents (the body of POST /admin/owners)."""

    name: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class AgentCreate(BaseModel):
    """An agent to register (the body of POST /admin/agents)."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    owner_id: str = Field(min_length=1, description="the owner (own_...) who answers for the agent")
    description: str = Field(min_length=1, max_length=2000)
    models: list[str] = Field(default_factory=list, description="allowed model aliases or tag:<tag>; empty: all")
    policy: ToolPolicy = Field(default_factory=ToolPolicy, description="allowed tools, constraints, sensitive tools")
    caps: RunCaps = Field(default_factory=RunCaps, description="per-run caps (steps, spend, tokens, time) and loops")
    expires_in_days: float | None = Field(default=None, gt=0)


class HaltSet(BaseModel):
    """What to halt (the body of POST /admin/agents/halt and /resume)."""

    scope: HaltScope
    id: str = Field(default="", max_length=200, description="the agent or owner id; empty for 'all'")
    reason: str = Field(default="", max_length=500)


@dataclass(frozen=True, slots=True)
class CreatedAgent:
    """A new agent, its key's record and the key itself, shown this once."""

    agent: AgentRecord
    key: KeyRecord
    token: str


def _owner(ctx: AdminContext, owner_id: str) -> OwnerRecord:
    owner = ctx.keys.agents.owners.get(owner_id)
    if owner is None:
        raise NotFound(f"no owner with id '{owner_id}'", code="owner_not_found")
    return owner


def _agent(ctx: AdminContext, agent_id: str) -> AgentRecord:
    agent = ctx.keys.agents.agents.get(agent_id)
    if agent is None:
        raise NotFound(f"no agent with id '{agent_id}'", code="agent_not_found")
    return agent


async def create_owner(ctx: AdminContext, actor: Principal, spec: OwnerCreate) -> OwnerRecord:
    """Register an owner (e-mail addresses are unique)."""
    require_admin(actor)
    await ctx.keys.refresh()
    email = str(spec.email).lower()
    if any(o.email == email for o in ctx.keys.agents.owners.values()):
        raise BadRequest(f"an owner with e-mail '{email}' exists already", code="owner_exists")
    owner = OwnerRecord("own_" + secrets.token_hex(6), spec.name, email, "active", time.time())
    await ctx.store.insert_owner(owner)
    await ctx.keys.refresh()
    await audit_action(ctx, actor, "owner.create", owner.id, name=owner.name)
    return owner


async def list_owners(ctx: AdminContext, actor: Principal) -> list[OwnerRecord]:
    """Every owner."""
    require_admin(actor, write=False)
    return await ctx.store.list_owners()


async def set_owner_status(
    ctx: AdminContext, actor: Principal, owner_id: str, status: Literal["active", "suspended", "removed"]
) -> OwnerRecord:
    """Suspend, remove or reactivate an owner: every agent they own stops (or may go on) at once."""
    require_admin(actor)
    await ctx.keys.refresh()
    owner = _owner(ctx, owner_id)
    if owner.status == "removed":
        raise BadRequest(f"owner '{owner_id}' was removed", code="owner_removed")
    await ctx.store.set_owner_status(owner_id, status)
    await ctx.keys.refresh()
    await audit_action(ctx, actor, f"owner.{'resume' if status == 'active' else status.removesuffix('d')}", owner_id)
    return _owner(ctx, owner_id)


async def create_agent(ctx: AdminContext, actor: Principal, spec: AgentCreate) -> CreatedAgent:
    """Register an agent under an active owner, with its key (shown once)."""
    require_admin(actor)
    await ctx.keys.refresh()
    agent, owner = new_agent(ctx, spec)
    await ctx.store.insert_agent(agent)
    key, token = await ctx.keys.create(
        f"agent:{agent.name}", owner.email, agent.models, agent.expires_at, agent_id=agent.id
    )  # the agent's models are enforced at authentication too
    await ctx.keys.refresh()
    await audit_action(
        ctx, actor, "agent.create", agent.id, name=agent.name, owner_id=owner.id, key_id=key.id,
        models=",".join(agent.models), tools=",".join(spec.policy.allow),
    )  # fmt: skip
    return CreatedAgent(agent, key, token)


def new_agent(ctx: AdminContext, spec: AgentCreate) -> tuple[AgentRecord, OwnerRecord]:
    """The record of a new agent (validated: an active owner, a free name, known models), and its owner."""
    owner = _owner(ctx, spec.owner_id)
    if owner.status != "active":
        raise BadRequest(f"owner '{owner.id}' is {owner.status}; agents need an active owner", param="owner_id")
    if any(a.name == spec.name for a in ctx.keys.agents.agents.values()):
        raise BadRequest(f"an agent named '{spec.name}' exists already", code="agent_exists")
    unknown = [m for m in spec.models if not m.startswith("tag:") and not ctx.knows_model(m)]
    if unknown:
        raise BadRequest(f"unknown model(s) in 'models': {', '.join(unknown)}", param="models")
    now = time.time()
    expires = now + spec.expires_in_days * 86400 if spec.expires_in_days is not None else None
    agent = AgentRecord(
        "agt_" + secrets.token_hex(6),
        spec.name,
        owner.id,
        spec.description,
        tuple(spec.models),
        spec.policy.model_dump_json(),
        "active",
        now,
        expires,
        spec.caps.model_dump_json(),
    )
    return agent, owner


async def list_agents(ctx: AdminContext, actor: Principal) -> list[AgentRecord]:
    """Every agent."""
    require_admin(actor, write=False)
    return await ctx.store.list_agents()


async def show_agent(ctx: AdminContext, actor: Principal, agent_id: str) -> tuple[AgentRecord, list[KeyRecord]]:
    """One agent and its keys."""
    require_admin(actor, write=False)
    await ctx.keys.refresh()
    agent = _agent(ctx, agent_id)
    return agent, [k for k in await ctx.keys.list() if k.agent_id == agent_id]


async def set_agent_status(
    ctx: AdminContext, actor: Principal, agent_id: str, status: Literal["active", "suspended", "removed"]
) -> AgentRecord:
    """Suspend, resume or remove an agent (removal also revokes its keys)."""
    require_admin(actor)
    await ctx.keys.refresh()
    agent = _agent(ctx, agent_id)
    if agent.status == "removed":
        raise BadRequest(f"agent '{agent_id}' was removed", code="agent_removed")
    await ctx.store.set_agent_status(agent_id, status)
    if status == "removed":
        for key in await ctx.keys.list():
            if key.agent_id == agent_id and key.revoked_at is None:
                await ctx.keys.revoke(key.id)
    await ctx.keys.refresh()
    await audit_action(ctx, actor, f"agent.{'resume' if status == 'active' else status.removesuffix('d')}", agent_id)
    return _agent(ctx, agent_id)


async def set_caps(ctx: AdminContext, actor: Principal, agent_id: str, caps: RunCaps) -> AgentRecord:
    """Replace an agent's per-run caps and loop thresholds (in force from its next step)."""
    require_admin(actor)
    await ctx.keys.refresh()
    agent = _agent(ctx, agent_id)
    if agent.status == "removed":
        raise BadRequest(f"agent '{agent_id}' was removed", code="agent_removed")
    await ctx.store.set_agent_caps(agent_id, caps.model_dump_json())
    await ctx.keys.refresh()
    await audit_action(ctx, actor, "agent.set_caps", agent_id, caps=caps.model_dump_json(exclude_defaults=True))
    return _agent(ctx, agent_id)


def _check_scope(ctx: AdminContext, spec: HaltSet) -> str:
    if spec.scope == "all":
        return ""
    if not spec.id:
        raise BadRequest(f"halting scope '{spec.scope}' needs its 'id'", param="id")
    (_agent if spec.scope == "agent" else _owner)(ctx, spec.id)
    return spec.id


async def halt(ctx: AdminContext, actor: Principal, spec: HaltSet) -> HaltRecord:
    """Halt one agent, an owner's agents or every agent, at once (new requests get 403 `agent_halted`)."""
    if not (actor.governance or actor.is_admin):
        raise Forbidden("halting agents needs a governance key or the admin key", code="governance_required")
    await ctx.keys.refresh()
    record = HaltRecord(spec.scope, _check_scope(ctx, spec), spec.reason, actor.name, time.time())
    await ctx.store.upsert_halt(record)
    await ctx.keys.refresh()
    await audit_action(ctx, actor, "agent.halt", f"{spec.scope}:{record.scope_id}", reason=spec.reason)
    if ctx.announce is not None:  # the oversight webhook: a person learns of it without polling
        ctx.announce("agent.halted", asdict(record))
    return record


async def resume(ctx: AdminContext, actor: Principal, spec: HaltSet) -> None:
    """Lift a halt: the governance role's alone (not the admin's, not the owner's)."""
    require_governance(actor)
    scope_id = spec.id if spec.scope != "all" else ""
    if not await ctx.store.delete_halt(spec.scope, scope_id):
        raise NotFound(f"no halt on {spec.scope} '{scope_id}'", code="halt_not_found")
    await ctx.keys.refresh()
    await audit_action(ctx, actor, "agent.resume_halt", f"{spec.scope}:{scope_id}", reason=spec.reason)


async def list_halts(ctx: AdminContext, actor: Principal) -> list[HaltRecord]:
    """The halts in force."""
    if not (actor.governance or actor.is_admin or actor.admin_read):
        raise Forbidden("listing halts needs a governance or admin key", code="governance_required")
    return await ctx.store.list_halts()
