"""Persistence: keys, the usage ledger and the governance tables behind small interfaces, selected by URL."""

from __future__ import annotations

from pathlib import Path

from interlock.settings import ConfigError, Settings
from interlock.store.base import Store
from interlock.store.sqlite import SqliteStore

__all__ = ["POSTGRES_SCHEMES", "Store", "open_store", "unsupported_url"]

# psycopg is imported only when a postgresql:// URL asks for it.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def unsupported_url(settings: Settings, url: str) -> ConfigError:
    """The error for a store URL whose scheme no store serves."""
    return ConfigError(
        f"invalid config in {settings.source}: store.url: unsupported scheme in {url!r} "
        "(use sqlite:///PATH or postgresql://...)"
    )


def _spool_path(settings: Settings) -> Path:
    """Where this node keeps ledger rows the database refuses for now (one file per node, never shared)."""
    configured = settings.store.spool_path
    return Path(configured).expanduser() if configured else settings.home / "ledger-spool.jsonl"


def open_store(settings: Settings) -> Store:
    """The store named by `settings.store.url` (not yet opened)."""
    url = settings.store_url()
    if url.startswith("sqlite:///"):
        return SqliteStore(
            Path(url[len("sqlite:///") :]).expanduser(),
            flush_interval_ms=settings.store.flush_interval_ms,
            flush_max_rows=settings.store.flush_max_rows,
            busy_timeout_ms=settings.store.busy_timeout_ms,
            spool=_spool_path(settings),
            spool_max_bytes=settings.store.spool_max_bytes,
        )
    if url.startswith(POSTGRES_SCHEMES):
        from interlock.store.postgres import PostgresStore

        return PostgresStore(
            url,
            flush_interval_ms=settings.store.flush_interval_ms,
            flush_max_rows=settings.store.flush_max_rows,
            spool=_spool_path(settings),
            spool_max_bytes=settings.store.spool_max_bytes,
        )
    raise unsupported_url(settings, url)
