"""One migration list, two dialects: applied to a fresh SQLite file and a fresh PostgreSQL schema, the schemas
match (tables, columns in order with equivalent types, keys, indexes, triggers); a database already at the
latest version is left alone; the audit tables refuse UPDATE and DELETE on both.
"""

from __future__ import annotations

import pkgutil
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from interlock.store import migrations as migrations_package
from interlock.store.migrations import MIGRATIONS
from interlock.store.migrations.base import Migration, PerDialect, render
from interlock.store.schema import migrate
from interlock.store.sqlite import connect

PgConnection = psycopg.Connection[tuple[Any, ...]]

# Type names as each database reports them, by what they hold. SQLite stores booleans as integers and has one
# integer type (64-bit), so PostgreSQL's integer widths all count as one.
_TYPE_FAMILY = {
    "text": "text",
    "integer": "integer",
    "bigint": "integer",
    "smallint": "integer",
    "boolean": "integer",
    "real": "float",
    "double precision": "float",
    "blob": "bytes",
    "bytea": "bytes",
}


@dataclass(frozen=True)
class Column:
    """A column as both dialects can describe it."""

    name: str
    family: str
    not_null: bool
    default: str | None


@dataclass
class Schema:
    """A database's schema, normalised so that equivalent schemas in either dialect compare equal."""

    tables: dict[str, list[Column]]
    primary_keys: dict[str, tuple[str, ...]]
    uniques: set[tuple[str, tuple[str, ...]]]
    foreign_keys: set[tuple[str, tuple[str, ...], str, tuple[str, ...]]]
    indexes: set[tuple[str, tuple[str, ...], bool]]  # (table, columns, unique), those not backing a constraint
    triggers: set[tuple[str, str, str]]  # (table, timing, event)


def _default(value: str | None) -> str | None:
    if value is None:
        return None
    value = re.sub(r"::[a-z ]+$", "", value)  # PostgreSQL's casts: ''::text
    return {"true": "1", "false": "0"}.get(value, value)


def _family(type_name: str) -> str:
    return _TYPE_FAMILY[type_name.lower()]


def sqlite_schema(conn: sqlite3.Connection) -> Schema:
    """The schema of a SQLite database (its own tables, `sqlite_*`, left out)."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    schema = Schema({}, {}, set(), set(), set(), set())
    for table in (n for n in names if not n.startswith("sqlite_")):
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        # A primary key is NOT NULL in PostgreSQL; SQLite only enforces it for INTEGER PRIMARY KEY (an old quirk).
        schema.tables[table] = [Column(n, _family(t), bool(nn or pk), _default(d)) for _, n, t, nn, d, pk in info]
        pk = tuple(n for *_, n in sorted((pk, n) for _, n, _, _, _, pk in info if pk))
        if pk:
            schema.primary_keys[table] = pk
        for _, index, unique, origin, _ in conn.execute(f"PRAGMA index_list({table})").fetchall():
            columns = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({index})").fetchall())
            if origin == "u":
                schema.uniques.add((table, columns))
            elif origin == "c":
                schema.indexes.add((table, columns, bool(unique)))
        fks: dict[int, list[tuple[str, str, str]]] = {}
        for fk_id, _, target, src, dst, *_ in conn.execute(f"PRAGMA foreign_key_list({table})").fetchall():
            fks.setdefault(fk_id, []).append((target, src, dst))
        for parts in fks.values():
            schema.foreign_keys.add((table, tuple(p[1] for p in parts), parts[0][0], tuple(p[2] for p in parts)))
    for table, sql in conn.execute("SELECT tbl_name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall():
        found = re.search(r"\b(BEFORE|AFTER|INSTEAD OF)\s+(INSERT|UPDATE|DELETE)\b", sql, re.IGNORECASE)
        assert found, sql
        schema.triggers.add((table, found[1].upper(), found[2].upper()))
    return schema


_PG_COLUMNS = """
SELECT table_name, column_name, data_type, is_nullable = 'NO', column_default FROM information_schema.columns
WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"""
_PG_CONSTRAINTS = """
SELECT c.contype, t.relname, c.conname, a.attname, rt.relname, ra.attname
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
CROSS JOIN LATERAL unnest(c.conkey, coalesce(c.confkey, c.conkey)) WITH ORDINALITY AS k(col, ref, i)
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.col
LEFT JOIN pg_class rt ON rt.oid = c.confrelid
LEFT JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = k.ref
WHERE c.connamespace = current_schema()::regnamespace AND c.contype IN ('p', 'u', 'f')
ORDER BY c.conname, k.i"""
_PG_INDEXES = """
SELECT t.relname, ix.indisunique,
       array(SELECT a.attname FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n)
FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid
WHERE t.relnamespace = current_schema()::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid AND c.contype IN ('p', 'u', 'x'))"""
# information_schema lists row and statement triggers on INSERT, UPDATE and DELETE; not TRUNCATE, which SQLite
# does not have (its DELETE without WHERE fires the row triggers).
_PG_TRIGGERS = """
SELECT event_object_table, action_timing, event_manipulation FROM information_schema.triggers
WHERE trigger_schema = current_schema()"""


def postgres_schema(conn: PgConnection) -> Schema:
    """The schema of the connection's current PostgreSQL schema."""
    schema = Schema({}, {}, set(), set(), set(), set())
    for table, name, type_name, not_null, default in conn.execute(_PG_COLUMNS).fetchall():
        schema.tables.setdefault(table, []).append(Column(name, _family(type_name), not_null, _default(default)))
    constraints: dict[str, tuple[str, str, list[str], str | None, list[str]]] = {}
    for kind, table, name, column, target, ref in conn.execute(_PG_CONSTRAINTS).fetchall():
        constraints.setdefault(name, (kind, table, [], target, []))
        constraints[name][2].append(column)
        constraints[name][4].append(ref)
    for kind, table, columns, target, refs in constraints.values():
        if kind == "p":
            schema.primary_keys[table] = tuple(columns)
        elif kind == "u":
            schema.uniques.add((table, tuple(columns)))
        else:
            assert target is not None
            schema.foreign_keys.add((table, tuple(columns), target, tuple(refs)))
    for table, unique, columns in conn.execute(_PG_INDEXES).fetchall():
        schema.indexes.add((table, tuple(columns), bool(unique)))
    for table, timing, event in conn.execute(_PG_TRIGGERS).fetchall():
        schema.triggers.add((table, timing, event))
    return schema


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a fresh SQLite file, as the stores open it."""
    conn = connect(tmp_path / "interlock.db")
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def pg(pg_url: str) -> Iterator[PgConnection]:
    """An autocommit connection to a fresh PostgreSQL schema."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


LATEST = MIGRATIONS[-1].number


def test_the_list_is_numbered_one_by_one_and_names_every_module() -> None:
    assert [m.number for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    modules = sorted(m.name for m in pkgutil.iter_modules(migrations_package.__path__) if m.name != "base")
    assert modules == [f"m{m.number:04d}_{m.name}" for m in MIGRATIONS]


def test_both_dialects_build_the_same_schema(lite: sqlite3.Connection, pg: PgConnection) -> None:
    assert migrate(lite, "sqlite") == migrate(pg, "postgresql") == LATEST
    a, b = sqlite_schema(lite), postgres_schema(pg)
    assert a.tables.keys() == b.tables.keys()
    for table in a.tables:
        assert a.tables[table] == b.tables[table], table
    assert a.primary_keys == b.primary_keys
    assert a.uniques == b.uniques
    assert a.foreign_keys == b.foreign_keys
    assert a.indexes == b.indexes
    assert a.triggers == b.triggers
    # Not two empty sets agreeing: what the later tests rely on is there.
    assert {"keys", "usage", "audit", "audit_checkpoints", "orgs", "teams", "budgets", "rate_limits"} < a.tables.keys()
    assert ("usage", ("key_id", "ts"), False) in a.indexes
    assert {(t, "BEFORE", e) for t in ("audit", "audit_checkpoints") for e in ("UPDATE", "DELETE")} == a.triggers


def test_every_type_placeholder_means_the_same_in_both(lite: sqlite3.Connection, pg: PgConnection) -> None:
    probe = Migration(
        1,
        "probe",
        (
            "CREATE TABLE probe (id {serial}, body {blob}, n {bigint} NOT NULL DEFAULT 0, f {float}, ok {bool})",
            "CREATE UNIQUE INDEX probe_n ON probe (n)",
            "INSERT INTO probe (n, ok) VALUES (7, true) ON CONFLICT DO NOTHING",
            "INSERT INTO probe (n, ok) VALUES (7, false) ON CONFLICT DO NOTHING",
            PerDialect(
                sqlite=("INSERT OR IGNORE INTO probe (n) VALUES (8)",),
                postgresql=("INSERT INTO probe (n) VALUES (8) ON CONFLICT (n) DO NOTHING",),
            ),
        ),
    )
    assert migrate(lite, "sqlite", (probe,)) == migrate(pg, "postgresql", (probe,)) == 1
    a, b = sqlite_schema(lite), postgres_schema(pg)
    assert a.tables == b.tables and a.primary_keys == b.primary_keys == {"probe": ("id",)}
    assert a.indexes == b.indexes == {("probe", ("n",), True)}
    rows = "SELECT n, ok FROM probe ORDER BY id"
    assert lite.execute(rows).fetchall() == [(7, 1), (8, None)]
    assert pg.execute(rows).fetchall() == [(7, True), (8, None)]
    # Numbered by the database, alike: both spend a number on the insert that did nothing.
    ids = "SELECT id FROM probe ORDER BY id"
    assert lite.execute(ids).fetchall() == pg.execute(ids).fetchall() == [(1,), (3,)]
    with pytest.raises(KeyError):
        render("CREATE TABLE t (x {nonesuch})", "sqlite")
    assert render("CREATE TABLE t (x TEXT DEFAULT '{}')", "postgresql") == "CREATE TABLE t (x TEXT DEFAULT '{}')"


def _sqlite_objects(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()


def test_a_sqlite_database_at_the_latest_version_is_left_alone(lite: sqlite3.Connection) -> None:
    migrate(lite, "sqlite")
    lite.execute("INSERT INTO orgs (id, name, created_at) VALUES ('org_1', 'Acme', 1.0)")
    before = _sqlite_objects(lite)
    assert migrate(lite, "sqlite") == LATEST
    assert migrate(lite, "sqlite") == LATEST
    assert _sqlite_objects(lite) == before
    assert lite.execute("SELECT version FROM schema_version").fetchall() == [(n,) for n in range(1, LATEST + 1)]
    assert lite.execute("SELECT name FROM orgs").fetchall() == [("Acme",)]


def test_an_old_sqlite_database_without_audit_triggers_gets_them(lite: sqlite3.Connection) -> None:
    """Before the shared list, the audit store (not 0003) created SQLite's triggers: a database it never
    opened has none. Migration 8 adds the missing ones and runs nothing else again."""
    assert migrate(lite, "sqlite", MIGRATIONS[:7]) == 7
    for (name,) in lite.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        lite.execute(f"DROP TRIGGER {name}")
    lite.execute("INSERT INTO orgs (id, name, created_at) VALUES ('org_1', 'Acme', 1.0)")
    assert migrate(lite, "sqlite") == LATEST >= 8
    triggers = {name for (name,) in lite.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert triggers == {
        "audit_no_update",
        "audit_no_delete",
        "audit_checkpoints_no_update",
        "audit_checkpoints_no_delete",
    }
    assert lite.execute("SELECT name FROM orgs").fetchall() == [("Acme",)]
    lite.execute(
        "INSERT INTO audit (seq, ts, actor_name, action, target, decision, reason, metadata, prev_hash, hash) "
        "VALUES (1, 1.0, 'admin', 'key.create', '', 'allow', '', '{}', '', 'h')"
    )
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        lite.execute("DELETE FROM audit")


def test_a_postgres_schema_at_the_latest_version_is_left_alone(pg: PgConnection, pg_url: str) -> None:
    migrate(pg, "postgresql")
    pg.execute("INSERT INTO orgs (id, name, created_at) VALUES ('org_1', 'Acme', 1.0)")
    before = postgres_schema(pg)
    assert migrate(pg, "postgresql") == LATEST
    assert postgres_schema(pg) == before
    assert pg.execute("SELECT version FROM schema_version").fetchall() == [(n,) for n in range(1, LATEST + 1)]
    assert pg.execute("SELECT name FROM orgs").fetchall() == [("Acme",)]
    # The runner let go of its advisory lock: another session takes it at once.
    with psycopg.connect(pg_url, autocommit=True) as other:
        taken = other.execute("SELECT pg_try_advisory_lock(hashtext('interlock.migrate:' || current_schema()))")
        assert taken.fetchall() == [(True,)]


def test_a_failed_migration_leaves_nothing_behind(lite: sqlite3.Connection, pg: PgConnection) -> None:
    broken = Migration(1, "broken", ("CREATE TABLE half (x TEXT)", "CREATE TABLE half (x TEXT)"))
    with pytest.raises(sqlite3.OperationalError):
        migrate(lite, "sqlite", (broken,))
    with pytest.raises(psycopg.errors.DuplicateTable):
        migrate(pg, "postgresql", (broken,))
    assert sqlite_schema(lite).tables.keys() == postgres_schema(pg).tables.keys() == {"schema_version"}
    assert lite.execute("SELECT * FROM schema_version").fetchall() == []
    assert pg.execute("SELECT * FROM schema_version").fetchall() == []
    assert not lite.in_transaction


_AUDIT_ROW = (
    "INSERT INTO audit (seq, ts, actor_id, actor_name, action, target, decision, reason, metadata, prev_hash, hash) "
    "VALUES (1, 1.0, NULL, 'admin', 'key.create', 'key_1', 'allow', '', '{}', 'genesis', 'h1')"
)
_CHECKPOINT_ROW = (
    "INSERT INTO audit_checkpoints (id, ts, seq, hash, count, prev, key, signature) "
    "VALUES (1, 1.0, 1, 'h1', 1, 'genesis', 'k', 's')"
)
_EDITS = [
    "UPDATE audit SET reason = 'edited'",
    "DELETE FROM audit",
    "UPDATE audit_checkpoints SET signature = 'forged'",
    "DELETE FROM audit_checkpoints WHERE id = 1",
]


def test_the_audit_tables_refuse_update_and_delete(lite: sqlite3.Connection, pg: PgConnection) -> None:
    migrate(lite, "sqlite")
    migrate(pg, "postgresql")
    for conn in (lite, pg):
        conn.execute(_AUDIT_ROW)
        conn.execute(_CHECKPOINT_ROW)
    for edit in _EDITS:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            lite.execute(edit)
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            pg.execute(edit)
    for table in ("audit", "audit_checkpoints"):
        with pytest.raises(psycopg.errors.RaiseException, match=f"{table} is append-only"):
            pg.execute(f"TRUNCATE {table}")
    for conn in (lite, pg):
        assert conn.execute("SELECT reason FROM audit").fetchall() == [("",)]
        assert conn.execute("SELECT signature FROM audit_checkpoints").fetchall() == [("s",)]
