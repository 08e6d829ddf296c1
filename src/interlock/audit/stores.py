"""The audit log's store, in the database that `store.url` names."""

from __future__ import annotations

from interlock.audit.chain import AuditStore
from interlock.audit.sqlite_store import SqliteAuditStore
from interlock.settings import Settings
from interlock.store import POSTGRES_SCHEMES, unsupported_url


def open_audit_store(settings: Settings) -> AuditStore:
    """The audit log's store in the database that `settings.store.url` names (not yet opened)."""
    url = settings.store_url()
    if url.startswith("sqlite:///"):
        return SqliteAuditStore.from_settings(settings)
    if url.startswith(POSTGRES_SCHEMES):
        from interlock.audit.postgres_store import PostgresAuditStore

        return PostgresAuditStore(url)
    raise unsupported_url(settings, url)
