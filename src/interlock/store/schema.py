"""Applying the numbered migrations (`store/migrations/`) to a SQLite or PostgreSQL database.

Each migration runs in its own transaction together with its `schema_version` row, so a crash leaves no
half-applied one, and a database records every number it applied: one already there is never run again.
On PostgreSQL a session advisory lock serialises replicas that start at once: the others wait, then find
every migration applied.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from interlock.store.migrations import MIGRATIONS
from interlock.store.migrations.base import DialectName, Migration

# BEGIN IMMEDIATE takes SQLite's write lock at once, so two processes cannot both decide to apply a migration.
_BEGIN: dict[DialectName, str] = {"sqlite": "BEGIN IMMEDIATE", "postgresql": "BEGIN"}
# The same key as before the runner was shared (and as `postgres.lock_key(conn, "interlock.migrate")`): replicas
# of two versions starting at once still take one lock. Per schema, so that tests in fresh schemas do not wait.
_PG_LOCK_KEY = "hashtext('interlock.migrate' || ':' || coalesce(current_schema(), ''))"


class _Rows(Protocol):
    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What the runner needs of a connection: sqlite3's with isolation_level=None, or psycopg's in autocommit."""

    def execute(self, sql: str, /) -> _Rows:
        """Run one statement."""
        ...


def migrate(conn: Connection, dialect: DialectName, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply the migrations that `conn`'s database has not applied yet; return its schema version."""
    if dialect == "postgresql":
        conn.execute(f"SELECT pg_advisory_lock({_PG_LOCK_KEY})")
    try:
        # Created under the lock: concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL's catalog.
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        applied = {int(row[0]) for row in conn.execute("SELECT version FROM schema_version").fetchall()}
        for migration in migrations:
            if migration.number not in applied:
                _apply(conn, dialect, migration)
                applied.add(migration.number)
    finally:
        if dialect == "postgresql":
            # A broken connection has lost the lock with its session already.
            with contextlib.suppress(Exception):
                conn.execute(f"SELECT pg_advisory_unlock({_PG_LOCK_KEY})")
    return max(applied, default=0)


def _apply(conn: Connection, dialect: DialectName, migration: Migration) -> None:
    conn.execute(_BEGIN[dialect])
    try:
        for statement in migration.render(dialect):
            conn.execute(statement)
        conn.execute(f"INSERT INTO schema_version (version) VALUES ({migration.number:d})")
        conn.execute("COMMIT")
    except BaseException:
        # The rollback of a migration that failed must not hide why it failed (a lost connection, say).
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
        raise
