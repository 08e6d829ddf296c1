"""What the admin services act on, and how each of their actions is audited.

Every service takes an `AdminContext`, the acting principal and a typed input. It checks the principal's
role (`auth.keys.require_admin`), validates the input, writes through the store, refreshes this process's
caches that depend on what it wrote (other replicas catch up within their refresh interval), and appends
an audit entry that is committed and covered by a signed checkpoint before the service returns. Bad input,
unknown ids and conflicts raise `GatewayError` subclasses, whoever the caller is (HTTP, CLI, dashboard).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from interlock.audit.chain import MetaValue
from interlock.audit.log import AuditEntry, AuditEvent
from interlock.auth.keys import Keys, Principal
from interlock.governance.admission import Governance
from interlock.settings import Settings
from interlock.store import Store

if TYPE_CHECKING:
    from interlock.guardrails.service import GuardrailService


class AuditSink(Protocol):
    """Where admin actions are recorded (`audit.log.AuditLog`)."""

    async def append(self, event: AuditEvent) -> AuditEntry: ...


@dataclass(frozen=True, slots=True)
class AdminContext:
    """The store, the caches built from it, and the audit log: one per process, shared by every caller."""

    settings: Settings
    store: Store
    keys: Keys
    governance: Governance
    audit: AuditSink
    guardrails: GuardrailService | None = None  # refreshed after a guardrail policy changes
    announce: Callable[[str, Mapping[str, Any]], object] | None = None  # the oversight webhook's `send` (halts)

    def knows_model(self, alias: str) -> bool:
        """Whether `alias` is a configured model alias."""
        return alias in self.settings.models


async def audit_action(ctx: AdminContext, actor: Principal, action: str, target: str, **metadata: MetaValue) -> None:
    """Record an admin action; returns once it is committed and covered by a signed checkpoint."""
    event = AuditEvent.admin(action, actor_id=actor.key_id, actor_name=actor.name, target=target, **metadata)
    await ctx.audit.append(event)
