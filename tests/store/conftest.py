"""PostgreSQL for the store tests: a fresh schema per test, dropped afterwards.

The server is the one at INTERLOCK_TEST_POSTGRES; tests fail, never skip, when it is unreachable. Sessions run
in a far-off time zone so that nothing depends on the server's.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from interlock.store import Store
from interlock.store.postgres import PostgresStore
from interlock.store.sqlite import SqliteStore

POSTGRES = os.environ.get("INTERLOCK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def pg_admin() -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection to the test database's default schema."""
    return psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose sessions use a fresh, empty schema."""
    schema = f"interlock_test_{uuid.uuid4().hex[:12]}"
    with pg_admin() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    options = quote(f"-csearch_path={schema} -ctimezone=Pacific/Chatham")
    try:
        # The application name tells this test's sessions apart, for the test that terminates them.
        yield f"{POSTGRES}{'&' if '?' in POSTGRES else '?'}options={options}&application_name={schema}"
    finally:
        with pg_admin() as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, empty store of each kind: SQLite in `tmp_path`, PostgreSQL in a fresh schema."""
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "db.sqlite", flush_interval_ms=5)
    else:
        s = PostgresStore(request.getfixturevalue("pg_url"), flush_interval_ms=5)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
