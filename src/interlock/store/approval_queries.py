"""Approvals of held tool calls and agents' short-lived tokens, for every store (SQL written once, `?` placeholders).

Consuming an approval is one conditional UPDATE (`status = 'approved'` to `'consumed'`), so of two identical
calls racing for one approval exactly one wins, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, Protocol

ApprovalStatus = Literal["pending", "approved", "denied", "consumed"]

_APPROVAL = (
    "id, agent_id, owner_id, run_id, tool, args_sha256, arguments, reason, request_id, status, created_at, "
    "expires_at, decided_by, decided_at, note, consumed_at"
)
_MINTED = "id, agent_id, key_id, owner_id, issued_by, created_at, expires_at, revoked_at"


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """One held tool call awaiting (or given) a human's decision."""

    id: str
    agent_id: str
    owner_id: str
    run_id: str  # "" when the call came with no run: then any run of the agent may use the approval
    tool: str
    args_sha256: str  # SHA-256 of the canonical arguments (`agents.policy.canonical_arguments`)
    arguments: str  # the canonical arguments, for the approver to read (capped; never audited)
    reason: str  # why it was held: "approval_required" or "untrusted_provenance"
    request_id: str
    status: ApprovalStatus
    created_at: float
    expires_at: float
    decided_by: str = ""
    decided_at: float | None = None
    note: str = ""
    consumed_at: float | None = None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ApprovalRecord:
        """A record from a row of the approval columns (any backend)."""
        i, a, o, r, t, h, args, why, req, s, c, e, by, at, note, used = row
        return cls(
            str(i), str(a), str(o), str(r), str(t), str(h), str(args), str(why), str(req), s, float(c), float(e),
            str(by), None if at is None else float(at), str(note), None if used is None else float(used),
        )  # fmt: skip

    def values(self) -> tuple[object, ...]:
        """The values for the approval columns."""
        return (
            self.id, self.agent_id, self.owner_id, self.run_id, self.tool, self.args_sha256, self.arguments,
            self.reason, self.request_id, self.status, self.created_at, self.expires_at, self.decided_by,
            self.decided_at, self.note, self.consumed_at,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A minted agent token (its id and claims; the token is signed, never stored)."""

    id: str
    agent_id: str
    key_id: str
    owner_id: str
    issued_by: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None


class ApprovalStore(Protocol):
    """What approvals and agent tokens need from a store."""

    async def insert_approval(self, approval: ApprovalRecord) -> None: ...
    async def approval(self, approval_id: str) -> ApprovalRecord | None: ...
    async def list_approvals(
        self, agent_id: str | None = None, status: ApprovalStatus | None = None, limit: int = 200
    ) -> list[ApprovalRecord]: ...
    async def approvals_for(self, agent_id: str, tool: str, args_sha256: str, now: float) -> list[ApprovalRecord]: ...
    async def decide_approval(
        self, approval_id: str, status: ApprovalStatus, by: str, at: float, note: str
    ) -> bool: ...
    async def consume_approval(self, approval_id: str, at: float) -> bool: ...
    async def insert_token(self, token: TokenRecord) -> None: ...
    async def list_tokens(self, agent_id: str | None = None) -> list[TokenRecord]: ...
    async def revoke_token(self, token_id: str, at: float) -> bool: ...
    async def revoked_tokens(self, now: float) -> list[str]: ...


class ApprovalQueries:
    """Mixed into a store, which provides `_query` and `_execute` taking `?` placeholders."""

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        raise NotImplementedError

    async def insert_approval(self, approval: ApprovalRecord) -> None:
        """Store a new approval request."""
        marks = ", ".join("?" * (_APPROVAL.count(",") + 1))
        await asyncio.to_thread(
            self._execute, f"INSERT INTO agent_approvals ({_APPROVAL}) VALUES ({marks})", approval.values()
        )

    async def approval(self, approval_id: str) -> ApprovalRecord | None:
        """One approval request, or None."""
        rows = await asyncio.to_thread(
            self._query, f"SELECT {_APPROVAL} FROM agent_approvals WHERE id = ?", (approval_id,)
        )
        return ApprovalRecord.from_row(rows[0]) if rows else None

    async def list_approvals(
        self, agent_id: str | None = None, status: ApprovalStatus | None = None, limit: int = 200
    ) -> list[ApprovalRecord]:
        """Approval requests, newest first, optionally of one agent and in one stored status."""
        where, params = [], []
        if agent_id is not None:
            where.append("agent_id = ?")
            params.append(agent_id)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await asyncio.to_thread(
            self._query,
            f"SELECT {_APPROVAL} FROM agent_approvals{clause} ORDER BY created_at DESC, id LIMIT ?",
            (*params, limit),
        )
        return [ApprovalRecord.from_row(r) for r in rows]

    async def approvals_for(self, agent_id: str, tool: str, args_sha256: str, now: float) -> list[ApprovalRecord]:
        """The unexpired requests for exactly this agent, tool and arguments (any run), newest first."""
        rows = await asyncio.to_thread(
            self._query,
            f"SELECT {_APPROVAL} FROM agent_approvals WHERE agent_id = ? AND tool = ? AND args_sha256 = ? "
            "AND expires_at > ? AND status <> 'consumed' ORDER BY created_at DESC, id",
            (agent_id, tool, args_sha256, now),
        )
        return [ApprovalRecord.from_row(r) for r in rows]

    async def decide_approval(self, approval_id: str, status: ApprovalStatus, by: str, at: float, note: str) -> bool:
        """Approve or deny a pending, unexpired request; False if it is not pending any more (or expired)."""
        n = await asyncio.to_thread(
            self._execute,
            "UPDATE agent_approvals SET status = ?, decided_by = ?, decided_at = ?, note = ? "
            "WHERE id = ? AND status = 'pending' AND expires_at > ?",
            (status, by, at, note, approval_id, at),
        )
        return n > 0

    async def consume_approval(self, approval_id: str, at: float) -> bool:
        """Use an approved request once; False if another call used it first (or it expired)."""
        n = await asyncio.to_thread(
            self._execute,
            "UPDATE agent_approvals SET status = 'consumed', consumed_at = ? "
            "WHERE id = ? AND status = 'approved' AND expires_at > ?",
            (at, approval_id, at),
        )
        return n > 0

    async def insert_token(self, token: TokenRecord) -> None:
        """Record a minted token."""
        t = token
        await asyncio.to_thread(
            self._execute,
            f"INSERT INTO agent_tokens ({_MINTED}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (t.id, t.agent_id, t.key_id, t.owner_id, t.issued_by, t.created_at, t.expires_at, t.revoked_at),
        )

    async def list_tokens(self, agent_id: str | None = None) -> list[TokenRecord]:
        """Minted tokens, newest first (optionally of one agent)."""
        clause, params = ("WHERE agent_id = ? ", (agent_id,)) if agent_id is not None else ("", ())
        rows = await asyncio.to_thread(
            self._query, f"SELECT {_MINTED} FROM agent_tokens {clause}ORDER BY created_at DESC, id", params
        )
        return [
            TokenRecord(str(i), str(a), str(k), str(o), str(b), float(c), float(e), None if r is None else float(r))
            for i, a, k, o, b, c, e, r in rows
        ]

    async def revoke_token(self, token_id: str, at: float) -> bool:
        """Revoke a token; False if there is no such token or it was revoked already."""
        n = await asyncio.to_thread(
            self._execute,
            "UPDATE agent_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (at, token_id),
        )
        return n > 0

    async def revoked_tokens(self, now: float) -> list[str]:
        """The ids of revoked tokens that have not expired yet (an expired token is refused anyway)."""
        rows = await asyncio.to_thread(
            self._query, "SELECT id FROM agent_tokens WHERE revoked_at IS NOT NULL AND expires_at > ?", (now,)
        )
        return [str(r[0]) for r in rows]
