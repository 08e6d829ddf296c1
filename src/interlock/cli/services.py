"""The admin services for one command: open the store, call a service as the local user, close.

Commands write the store directly. A running server sees a new key at once, and other changes
(revocations, teams, budgets, rate limits) within `store.key_refresh_interval_s` and
`governance.refresh_s`. Every change is audited with the actor `cli:<user>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from interlock.admin import AdminContext
from interlock.audit.log import AuditEntry, AuditEvent, AuditLog
from interlock.audit.stores import open_audit_store
from interlock.auth.keys import Keys, Principal
from interlock.cli.options import fail, settings_or_exit
from interlock.errors import GatewayError
from interlock.governance.admission import Governance
from interlock.governance.counters import open_counters
from interlock.governance.webhook import Webhook
from interlock.settings import Settings
from interlock.store import open_store

T = TypeVar("T")
Service = Callable[[AdminContext, Principal], Awaitable[T]]


def local_user() -> Principal:
    """Whoever runs the command, with the admin's rights: whoever can open the store has them anyway."""
    return Principal(key_id=None, name=f"cli:{getpass.getuser()}", is_admin=True)


class _AuditOnFirstUse:
    """The audit log, opened by the first action it records (a read never opens it) and closed at the end."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._log: AuditLog | None = None

    async def append(self, event: AuditEvent) -> AuditEntry:
        """Append `event`, opening the log first if need be."""
        if self._log is None:
            audit = self._settings.audit
            log = AuditLog(
                open_audit_store(self._settings),
                self._settings.audit_dir(),
                checkpoint_every=audit.checkpoint_every,
                checkpoint_interval_s=audit.checkpoint_interval_s,
            )
            await log.open()
            self._log = log
        return await self._log.append(event)

    async def close(self) -> None:
        """Close the log if it was opened (with its final checkpoint)."""
        if self._log is not None:
            await self._log.close()


async def _call(settings: Settings, service: Service[T]) -> T:
    store = open_store(settings)
    await store.open()
    g = settings.governance
    # Not started: the rules it caches die with the command; it reads budgets' counters (Redis, if set).
    governance = Governance(store, open_counters(g.redis_url, g.redis_prefix))
    audit = _AuditOnFirstUse(settings)
    o = settings.oversight  # a halt made here is announced too (`interlock halt ...`)
    secret = o.webhook_secret.get_secret_value().encode() if o.webhook_secret else b""
    webhook = Webhook(o.webhook_url, secret, attempts=o.webhook_attempts) if o.webhook_url and secret else None
    if webhook is not None:
        webhook.start()
    try:
        # No admin token: the command line authenticates nobody.
        keys = Keys(store, admin_token="")
        ctx = AdminContext(settings, store, keys, governance, audit, announce=webhook.send if webhook else None)
        return await service(ctx, local_user())
    finally:
        if webhook is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(webhook.drain(), 20)  # its retries, bounded: the command must end
            await webhook.close()
        await audit.close()
        await governance.close()
        await store.close()


def call(config: Path | None, service: Service[T]) -> T:
    """Run one admin service against the configured store; its error is printed and exits 1."""
    settings = settings_or_exit(config)
    try:
        return asyncio.run(_call(settings, service))
    except GatewayError as exc:
        raise fail(exc.message) from None
