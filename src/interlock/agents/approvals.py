"""Approvals on the request path: a held tool call becomes an approval request; an approved one passes once.

A call the policy holds (`agents.policy`: `approval`, `approve`, or `on_untrusted = "approve"`) is looked up
by its binding: the agent, the tool and the SHA-256 of its canonical arguments, and the run when the request
was made in one (a request made outside a run, `run_id` "", serves any run of the agent). The newest
unexpired request of that binding decides:

- approved: the call goes through, and the approval is consumed by one conditional UPDATE (single use: of
  two identical calls racing for it, one passes and the other is held anew);
- pending: the call stays held under the same request (a retry before the decision files nothing new);
- denied: the call stays refused until the denial expires;
- none: a new request is stored, audited (`agent.approval_requested`) and announced (webhook
  `approval.requested`), and the call is held under its id.

Other arguments hash differently and so never ride on an approval. Expiry (`[oversight] approval_ttl_s`) runs
from the request's creation: an unanswered or unused approval lapses with it. Deciding is `admin.approvals`'.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from interlock.agents.policy import arguments_sha256, canonical_arguments
from interlock.audit.chain import AuditEvent
from interlock.store.approval_queries import ApprovalRecord, ApprovalStore

MAX_ARGUMENTS = 16_384  # characters of the arguments kept for the approver to read
REQUESTED = "approval.requested"
Announce = Callable[[str, Mapping[str, Any]], object]  # (event type, payload): `Webhook.send`


@dataclass(frozen=True, slots=True)
class Held:
    """Where a held call stands: approved (and consumed now), still pending, or denied."""

    approval_id: str
    state: Literal["approved", "pending", "denied"]
    decided_by: str = ""
    expires_at: float = 0.0


def announcement(record: ApprovalRecord) -> dict[str, Any]:
    """The webhook's `data` for a new request: the binding and its hash, never the argument values."""
    return {
        "approval_id": record.id,
        "agent_id": record.agent_id,
        "owner_id": record.owner_id,
        "run_id": record.run_id,
        "tool": record.tool,
        "args_sha256": record.args_sha256,
        "reason": record.reason,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
    }


class Approvals:
    """Files, finds and consumes approval requests for held calls (see the module docstring)."""

    def __init__(
        self,
        store: ApprovalStore,
        ttl_s: float = 3600.0,
        audit: Callable[[AuditEvent], None] | None = None,
        announce: Announce | None = None,
    ) -> None:
        self._store, self.ttl_s, self._audit, self._announce = store, ttl_s, audit, announce

    async def check(
        self,
        *,
        agent_id: str,
        owner_id: str,
        run_id: str,
        tool: str,
        arguments: str,
        reason: str,
        request_id: str = "",
        actor: tuple[str | None, str] = (None, ""),
    ) -> Held:
        """The state of this exact call's approval, filing a new request when there is none."""
        now = time.time()
        digest = arguments_sha256(arguments)
        found = [r for r in await self._store.approvals_for(agent_id, tool, digest, now) if r.run_id in ("", run_id)]
        for r in found:
            if r.status == "approved" and await self._store.consume_approval(r.id, now):
                return Held(r.id, "approved", r.decided_by, r.expires_at)
        for r in found:
            if r.status in ("pending", "denied"):
                return Held(r.id, r.status, r.decided_by, r.expires_at)
        record = ApprovalRecord(
            "apr_" + secrets.token_hex(8), agent_id, owner_id, run_id, tool, digest,
            canonical_arguments(arguments)[:MAX_ARGUMENTS], reason, request_id, "pending", now, now + self.ttl_s,
        )  # fmt: skip
        await self._store.insert_approval(record)
        if self._audit is not None:
            self._audit(
                AuditEvent(
                    "agent.approval_requested", "deny", actor[0], actor[1], record.id, reason,
                    {"agent_id": agent_id, "owner_id": owner_id, "run_id": run_id, "tool": tool[:200],
                     "args_sha256": digest, "request_id": request_id, "expires_at": record.expires_at},
                )
            )  # fmt: skip
        if self._announce is not None:
            self._announce(REQUESTED, announcement(record))
        return Held(record.id, "pending", "", record.expires_at)
