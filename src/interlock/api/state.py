"""What the endpoints share: built once at startup and kept on `app.state.interlock`."""

from __future__ import annotations

from dataclasses import dataclass

from interlock.gateway.pipeline import Gateway
from interlock.audit.log import AuditLog
from interlock.governance.admission import Governance
from interlock.auth.keys import Keys
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
