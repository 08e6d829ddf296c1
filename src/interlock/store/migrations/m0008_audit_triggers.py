"""0008: the audit tables' append-only triggers on every SQLite database, whatever created it.

Before the migrations owned them, the SQLite audit store created these triggers when it first opened a
database; one that only `interlock spend` or `interlock keys` had ever opened has none. This creates
any that are missing (same names as 0003). PostgreSQL's came with 0003 and need nothing.
"""

from interlock.store.migrations.base import Migration, PerDialect

_SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
    for table in ("audit", "audit_checkpoints")
    for op in ("UPDATE", "DELETE")
)

MIGRATION = Migration(8, "audit_triggers", (PerDialect(sqlite=_SQLITE_TRIGGERS, postgresql=()),))
