"""Owners, agents and halts (the kill switch), for every store (SQL written once, `?` placeholders)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol

OwnerStatus = Literal["active", "suspended", "removed"]
AgentStatus = Literal["active", "suspended", "removed"]
HaltScope = Literal["agent", "owner", "all"]

_OWNER = "id, name, email, status, created_at"
_AGENT = "id, name, owner_id, description, models, policy, status, created_at, expires_at, caps"
_HALT = "scope, scope_id, reason, halted_by, halted_at"


@dataclass(frozen=True, slots=True)
class OwnerRecord:
    """A person who answers for keys and agents."""

    id: str
    name: str
    email: str
    status: OwnerStatus
    created_at: float


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """An agent: a principal of its own, tied to an owner; `policy` is its tool policy as JSON."""

    id: str
    name: str
    owner_id: str
    description: str
    models: tuple[str, ...]
    policy: str
    status: AgentStatus
    created_at: float
    expires_at: float | None = None
    caps: str = "{}"  # per-run caps and loop thresholds as JSON (`agents.runs.RunCaps`)


@dataclass(frozen=True, slots=True)
class HaltRecord:
    """A halt in force: every agent it covers is refused with `agent_halted` until it is lifted."""

    scope: HaltScope
    scope_id: str
    reason: str
    halted_by: str
    halted_at: float


class AgentStore(Protocol):
    """What the agent registry needs from a store."""

    async def insert_owner(self, owner: OwnerRecord) -> None: ...
    async def list_owners(self) -> list[OwnerRecord]: ...
    async def set_owner_status(self, owner_id: str, status: OwnerStatus) -> bool: ...
    async def insert_agent(self, agent: AgentRecord) -> None: ...
    async def list_agents(self) -> list[AgentRecord]: ...
    async def set_agent_status(self, agent_id: str, status: AgentStatus) -> bool: ...
    async def set_agent_caps(self, agent_id: str, caps: str) -> bool: ...
    async def upsert_halt(self, halt: HaltRecord) -> None: ...
    async def delete_halt(self, scope: HaltScope, scope_id: str) -> bool: ...
    async def list_halts(self) -> list[HaltRecord]: ...


class AgentQueries:
    """Mixed into a store, which provides `_query` and `_execute` taking `?` placeholders."""

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        raise NotImplementedError

    async def insert_owner(self, owner: OwnerRecord) -> None:
        """Store a new owner (`DuplicateError`-like integrity errors propagate: the e-mail is unique)."""
        o = owner
        await asyncio.to_thread(
            self._execute,
            f"INSERT INTO owners ({_OWNER}) VALUES (?, ?, ?, ?, ?)",
            (o.id, o.name, o.email, o.status, o.created_at),
        )

    async def list_owners(self) -> list[OwnerRecord]:
        """Every owner, oldest first."""
        rows = await asyncio.to_thread(self._query, f"SELECT {_OWNER} FROM owners ORDER BY created_at, id")
        return [OwnerRecord(str(i), str(n), str(e), s, float(t)) for i, n, e, s, t in rows]

    async def set_owner_status(self, owner_id: str, status: OwnerStatus) -> bool:
        """Change an owner's status; False if there is no such owner."""
        n = await asyncio.to_thread(self._execute, "UPDATE owners SET status = ? WHERE id = ?", (status, owner_id))
        return n > 0

    async def insert_agent(self, agent: AgentRecord) -> None:
        """Store a new agent (its name is unique)."""
        a = agent
        await asyncio.to_thread(
            self._execute,
            f"INSERT INTO agents ({_AGENT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                a.id,
                a.name,
                a.owner_id,
                a.description,
                json.dumps(list(a.models)),
                a.policy,
                a.status,
                a.created_at,
                a.expires_at,
                a.caps,
            ),
        )

    async def list_agents(self) -> list[AgentRecord]:
        """Every agent, oldest first."""
        rows = await asyncio.to_thread(self._query, f"SELECT {_AGENT} FROM agents ORDER BY created_at, id")
        return [
            AgentRecord(
                str(i),
                str(n),
                str(o),
                str(d),
                tuple(json.loads(str(m))),
                str(p),
                s,
                float(c),
                None if e is None else float(e),
                str(caps),
            )
            for i, n, o, d, m, p, s, c, e, caps in rows
        ]

    async def set_agent_status(self, agent_id: str, status: AgentStatus) -> bool:
        """Change an agent's status; False if there is no such agent."""
        n = await asyncio.to_thread(self._execute, "UPDATE agents SET status = ? WHERE id = ?", (status, agent_id))
        return n > 0

    async def set_agent_caps(self, agent_id: str, caps: str) -> bool:
        """Replace an agent's per-run caps (JSON); False if there is no such agent."""
        n = await asyncio.to_thread(self._execute, "UPDATE agents SET caps = ? WHERE id = ?", (caps, agent_id))
        return n > 0

    async def upsert_halt(self, halt: HaltRecord) -> None:
        """Put a halt in force (a repeated halt of the same scope replaces the reason)."""
        h = halt
        await asyncio.to_thread(
            self._execute,
            f"INSERT INTO agent_halts ({_HALT}) VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, scope_id) DO UPDATE SET "
            "reason = excluded.reason, halted_by = excluded.halted_by, halted_at = excluded.halted_at",
            (h.scope, h.scope_id, h.reason, h.halted_by, h.halted_at),
        )

    async def delete_halt(self, scope: HaltScope, scope_id: str) -> bool:
        """Lift a halt; False if there was none."""
        n = await asyncio.to_thread(
            self._execute, "DELETE FROM agent_halts WHERE scope = ? AND scope_id = ?", (scope, scope_id)
        )
        return n > 0

    async def list_halts(self) -> list[HaltRecord]:
        """Every halt in force."""
        rows = await asyncio.to_thread(self._query, f"SELECT {_HALT} FROM agent_halts ORDER BY halted_at")
        return [HaltRecord(s, str(i), str(r), str(b), float(t)) for s, i, r, b, t in rows]
