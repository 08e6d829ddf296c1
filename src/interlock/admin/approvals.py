"""Approvals of held tool calls: list, show, approve, deny (the request path files them: `agents.approvals`).

Who decides: the admin, a governance key, or the agent's owner acting through their own key (a key created
with `owner_id`, `Principal.acts_as_owner`). An owner is a person's record, not a credential; a key that points
at the owner is how that person proves who they are. An agent's key names its owner too but never acts as
them, so no agent approves its own calls. An owner key sees and decides its own agents' requests only; an
admin_read key may read them all. A decision is audited with the approver (`agent.approval_granted`,
`agent.approval_denied`), and so is a refused attempt; a request decides once, and not after it expired.
"""

from __future__ import annotations

import time
from typing import Literal, cast

from pydantic import BaseModel, Field

from interlock.admin.context import AdminContext, audit_action
from interlock.audit.log import AuditEvent
from interlock.auth.keys import Principal
from interlock.errors import BadRequest, Forbidden, NotFound
from interlock.store.approval_queries import ApprovalRecord, ApprovalStatus

ShownStatus = Literal["pending", "approved", "denied", "consumed", "expired"]


class ApprovalConflict(BadRequest):
    """409: the request was decided already, or expired."""

    status = 409


class ApprovalQuery(BaseModel):
    """The filters of GET /admin/approvals."""

    status: ShownStatus | None = None
    agent_id: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=100, ge=1, le=1000)


class ApprovalDecision(BaseModel):
    """The body of POST /admin/approvals/{id}/approve and /deny (optional)."""

    note: str = Field(default="", max_length=500, description="why (audited)")


def shown_status(record: ApprovalRecord, now: float | None = None) -> ShownStatus:
    """The status as people see it: an open or unused request past its expiry is "expired"."""
    expired = record.expires_at <= (time.time() if now is None else now)
    return "expired" if expired and record.status in ("pending", "approved") else record.status


def _owner_of(ctx: AdminContext, record: ApprovalRecord) -> str:
    agent = ctx.keys.agents.agents.get(record.agent_id)
    return agent.owner_id if agent is not None else record.owner_id


def _may_read(actor: Principal) -> bool:
    return actor.is_admin or actor.admin_read or actor.governance


def _may_decide(ctx: AdminContext, actor: Principal, record: ApprovalRecord) -> bool:
    return actor.is_admin or actor.governance or actor.acts_as_owner(_owner_of(ctx, record))


def require_approver(actor: Principal) -> None:
    """403 unless the caller could see some approval (the API checks this before reading a body)."""
    if not (_may_read(actor) or (actor.agent_id is None and actor.owner_id)):
        raise Forbidden(
            "approvals need the agent owner's own key, a governance key or the admin key", code="approver_required"
        )


async def list_approvals(ctx: AdminContext, actor: Principal, query: ApprovalQuery) -> list[ApprovalRecord]:
    """Approval requests, newest first; an owner's key sees its own agents' only."""
    require_approver(actor)
    await ctx.keys.refresh()
    now = time.time()
    stored = cast("ApprovalStatus | None", None if query.status in (None, "expired") else query.status)
    found = await ctx.store.list_approvals(query.agent_id, stored, 1000 if query.status else query.limit)
    if not _may_read(actor):
        found = [r for r in found if actor.acts_as_owner(_owner_of(ctx, r))]
    if query.status is not None:
        found = [r for r in found if shown_status(r, now) == query.status]
    return found[: query.limit]


async def show_approval(ctx: AdminContext, actor: Principal, approval_id: str) -> ApprovalRecord:
    """One approval request (404 also for one the caller may not see)."""
    require_approver(actor)
    await ctx.keys.refresh()
    record = await ctx.store.approval(approval_id)
    if record is None or not (_may_read(actor) or _may_decide(ctx, actor, record)):
        raise NotFound(f"no approval request with id '{approval_id}'", code="approval_not_found")
    return record


async def decide(
    ctx: AdminContext, actor: Principal, approval_id: str, approve: bool, spec: ApprovalDecision
) -> ApprovalRecord:
    """Approve or deny a pending request, as the owner, a governance key or the admin; audited either way."""
    require_approver(actor)
    await ctx.keys.refresh()
    record = await ctx.store.approval(approval_id)
    if record is None:
        raise NotFound(f"no approval request with id '{approval_id}'", code="approval_not_found")
    if not _may_decide(ctx, actor, record):
        reason = "only the agent's owner, a governance key or the admin may decide this approval"
        await ctx.audit.append(
            AuditEvent.denial(
                f"agent.approval_{'granted' if approve else 'denied'}", actor_id=actor.key_id, actor_name=actor.name,
                reason=reason, target=approval_id, agent_id=record.agent_id,
            )
        )  # fmt: skip
        raise Forbidden(reason, code="approver_required")
    now = time.time()
    status: ApprovalStatus = "approved" if approve else "denied"
    by = f"{actor.name} ({actor.key_id})" if actor.key_id else actor.name
    if not await ctx.store.decide_approval(approval_id, status, by, now, spec.note):
        current = await ctx.store.approval(approval_id) or record
        raise ApprovalConflict(
            f"approval request '{approval_id}' is {shown_status(current, now)}; only a pending one can be decided",
            code="approval_not_pending",
        )
    await audit_action(
        ctx, actor, f"agent.approval_{'granted' if approve else 'denied'}", approval_id,
        agent_id=record.agent_id, owner_id=record.owner_id, run_id=record.run_id, tool=record.tool[:200],
        args_sha256=record.args_sha256, note=spec.note,
    )  # fmt: skip
    return await ctx.store.approval(approval_id) or record
