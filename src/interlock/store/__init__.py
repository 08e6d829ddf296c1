"""Persistence: keys and the usage ledger behind one small interface, selected by URL."""

from __future__ import annotations

from pathlib import Path

from interlock.settings import ConfigError, Settings
from interlock.store.sqlite import SqliteStore


def open_store(settings: Settings) -> SqliteStore:
    """The store named by `settings.store.url` (not yet opened)."""
    url = settings.store_url()
    if url.startswith("sqlite:///"):
        return SqliteStore(
            Path(url[len("sqlite:///") :]).expanduser(),
            flush_interval_ms=settings.store.flush_interval_ms,
            flush_max_rows=settings.store.flush_max_rows,
        )
    raise ConfigError(
        f"invalid config in {settings.source}: store.url: unsupported scheme in {url!r} (use sqlite:///PATH)"
    )
