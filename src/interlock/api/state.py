"""What the endpoints share: built once at startup and kept on `app.state.interlock`."""

from __future__ import annotations

from dataclasses import dataclass

from interlock.audit.log import AuditLog
from interlock.auth.keys import Keys
from interlock.gateway.gateway import Gateway
from interlock.gateway.reload import Reloader
from interlock.governance.admission import Governance
from interlock.governance.webhook import Webhook
from interlock.guardrails.service import GuardrailService
from interlock.observability import Observability
from interlock.providers.base import Provider
from interlock.settings import Settings
from interlock.store import Store


@dataclass
class AppState:
    """The running gateway's services."""

    settings: Settings
    store: Store
    keys: Keys
    gateway: Gateway
    providers: dict[str, Provider]
    started: int
    governance: Governance
    audit: AuditLog
    guardrails: GuardrailService | None = None
    observability: Observability | None = None
    oversight: Webhook | None = None  # announces approval requests and halts (`[oversight] webhook_url`)
    reloader: Reloader | None = None  # POST /admin/reload and SIGHUP
