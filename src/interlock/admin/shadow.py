"""Shadow agents: the report of keys whose traffic looks agentic, and registering one as an agent.

The evidence comes from `traffic_signals` (see `agents.shadow`): counts per key and hour, never text.
Registering ("adopting") a key creates an agent record under an owner, with a policy and caps like any
agent, and turns the existing key into that agent's key, so the software that holds it keeps working and
is governed from its next request on (tool policy, runs and caps, halts).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from interlock.admin.agents import AgentCreate, new_agent
from interlock.admin.context import AdminContext, audit_action
from interlock.agents.shadow import Assessment, suspects
from interlock.auth.keys import Principal, require_admin
from interlock.errors import BadRequest, NotFound
from interlock.store.agent_queries import AgentRecord
from interlock.store.records import KeyRecord

DEFAULT_WINDOW_H = 7 * 24


@dataclass(frozen=True, slots=True)
class Suspect:
    """A key that looks like an unregistered agent, with the evidence."""

    key: KeyRecord
    assessment: Assessment


async def report(ctx: AdminContext, actor: Principal, since_hours: int = DEFAULT_WINDOW_H) -> list[Suspect]:
    """Keys not registered as agents whose traffic of the last `since_hours` hours looks agentic."""
    require_admin(actor, write=False)
    if since_hours < 1:
        raise BadRequest("the window must be at least 1 hour", param="since_hours")
    rows = await ctx.store.traffic_signals(int(time.time() // 3600) - since_hours + 1)
    keys = {k.id: k for k in await ctx.keys.list()}
    governed = {k.id for k in keys.values() if k.agent_id is not None or k.revoked_at is not None}
    return [Suspect(keys[a.key_id], a) for a in suspects(rows, governed) if a.key_id in keys]


async def adopt(ctx: AdminContext, actor: Principal, key_id: str, spec: AgentCreate) -> AgentRecord:
    """Register the software behind `key_id` as an agent: a new agent record, the key becomes its key."""
    require_admin(actor)
    await ctx.keys.refresh()
    key = next((k for k in await ctx.keys.list() if k.id == key_id), None)
    if key is None:
        raise NotFound(f"no key with id '{key_id}'", code="key_not_found")
    if key.revoked_at is not None:
        raise BadRequest(f"key '{key_id}' is revoked", code="key_revoked")
    if key.agent_id is not None:
        raise BadRequest(f"key '{key_id}' is already agent '{key.agent_id}'s key", code="key_is_agent")
    if key.role:
        raise BadRequest(f"key '{key_id}' has the admin role '{key.role}'; an agent key cannot", code="key_has_role")
    agent, owner = new_agent(ctx, spec)
    await ctx.store.insert_agent(agent)
    if not await ctx.store.adopt_key(key_id, agent.id):  # changed by someone else meanwhile
        await ctx.store.set_agent_status(agent.id, "removed")
        raise BadRequest(f"key '{key_id}' changed while it was being registered; try again", code="key_changed")
    await ctx.keys.refresh()
    await audit_action(ctx, actor, "agent.adopt_key", agent.id, name=agent.name, owner_id=owner.id, key_id=key_id)
    return agent
