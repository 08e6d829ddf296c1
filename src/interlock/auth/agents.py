"""Agents as principals: the in-process directory of owners, agents and halts that authentication checks.

An agent key (`KeyRecord.agent_id` set) authenticates as its agent only while the whole chain is usable:
the agent exists, is active and not expired, its owner is active, and no halt covers it (the agent, its
owner, or every agent). The directory is reloaded with the key cache (`Keys.refresh`), so a change made
by another process takes effect within the key refresh interval; changes through this process's admin
services refresh it at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from interlock.errors import Forbidden
from interlock.store.agent_queries import AgentRecord, AgentStore, HaltRecord, OwnerRecord


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """The agent behind a key, and who answers for it."""

    agent: AgentRecord
    owner: OwnerRecord


def halted(reason: str, scope: str) -> Forbidden:
    """The 403 of a halted agent (`agent_halted`); only a governance key can lift it."""
    return Forbidden(
        f"this agent is halted ({scope}: {reason or 'no reason given'}); only a governance key can resume it",
        code="agent_halted",
    )


@dataclass(slots=True)
class AgentDirectory:
    """Owners, agents and halts, cached for authentication."""

    agents: dict[str, AgentRecord] = field(default_factory=dict)
    owners: dict[str, OwnerRecord] = field(default_factory=dict)
    halts: dict[tuple[str, str], HaltRecord] = field(default_factory=dict)

    async def load(self, store: AgentStore) -> None:
        """Reload everything from the store."""
        owners, agents, halts = await store.list_owners(), await store.list_agents(), await store.list_halts()
        self.owners = {o.id: o for o in owners}
        self.agents = {a.id: a for a in agents}
        self.halts = {(h.scope, h.scope_id): h for h in halts}

    def halt_of(self, agent: AgentRecord) -> HaltRecord | None:
        """The halt that covers `agent`, if any (the agent's own first, then its owner's, then all)."""
        for scope in (("agent", agent.id), ("owner", agent.owner_id), ("all", "")):
            found = self.halts.get(scope)
            if found is not None:
                return found
        return None

    def check(self, agent_id: str, now: float) -> AgentIdentity:
        """The identity behind an agent key; 403 when the agent, its owner or a halt stops it."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.status == "removed":
            raise Forbidden(f"agent '{agent_id}' was removed", code="agent_removed")
        if agent.status == "suspended":
            raise Forbidden(f"agent '{agent.name}' is suspended; ask its owner or an admin", code="agent_suspended")
        if agent.expires_at is not None and agent.expires_at <= now:
            raise Forbidden(f"agent '{agent.name}' has expired", code="agent_expired")
        owner = self.owners.get(agent.owner_id)
        if owner is None or owner.status != "active":
            state = "removed" if owner is None else owner.status
            raise Forbidden(
                f"the owner of agent '{agent.name}' is {state}, which stops every agent they own",
                code="owner_inactive",
            )
        halt = self.halt_of(agent)
        if halt is not None:
            raise halted(halt.reason, halt.scope)
        return AgentIdentity(agent, owner)
