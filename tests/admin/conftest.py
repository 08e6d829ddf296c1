"""The admin services against a real SQLite store, key cache, governance rules and audit log in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from interlock.admin import AdminContext
from interlock.audit.log import AuditEntry, AuditLog
from interlock.audit.stores import open_audit_store
from interlock.auth.keys import Keys, Principal
from interlock.governance.admission import Governance
from interlock.governance.counters import LocalCounters
from interlock.settings import Settings
from interlock.store import open_store
from tests.conftest import ADMIN_KEY

Entries = Callable[[], Awaitable[list[AuditEntry]]]


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[AdminContext]:
    """The services' context as the server builds it: caches loaded and refreshing, audit log open."""
    store = open_store(settings)
    await store.open()
    keys = Keys(store, ADMIN_KEY)
    governance = Governance(store, LocalCounters())
    audit = AuditLog(open_audit_store(settings), settings.audit_dir())
    await audit.open()
    await keys.start()
    await governance.start()
    try:
        yield AdminContext(settings, store, keys, governance, audit)
    finally:
        await governance.close()
        await keys.close()
        await audit.close()
        await store.close()


@pytest.fixture
def operator() -> Principal:
    """Someone with the admin's rights (as the CLI acts)."""
    return Principal(key_id=None, name="cli:ana", is_admin=True)


@pytest.fixture
def reader() -> Principal:
    """A key with role admin_read."""
    return Principal(key_id="key_reader", name="auditor", admin_read=True)


@pytest.fixture
def user() -> Principal:
    """An ordinary key."""
    return Principal(key_id="key_user", name="app")


@pytest.fixture
def entries(ctx: AdminContext) -> Entries:
    """The audit log's entries, oldest first."""

    async def read() -> list[AuditEntry]:
        assert isinstance(ctx.audit, AuditLog)
        return list(reversed(await ctx.audit.recent(100)))

    return read
