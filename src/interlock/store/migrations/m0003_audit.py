"""0003: the tamper-evident audit log (audit/log.py) and its signed checkpoints, append-only.

Entries are admin actions and denials, each chained to the previous one by hash; rows are only ever inserted
and seq runs 1, 2, 3, ... with no gaps. The triggers stop accidents and naive edits, not an owner of the
database (who can drop them): catching that is what `interlock audit verify` is for.
"""

from interlock.store.migrations.base import Migration, PerDialect

_TABLES = ("audit", "audit_checkpoints")

# SQLite has no TRUNCATE: its DELETE without WHERE fires row triggers whenever a table has them. Databases
# migrated before these triggers lived here got the same ones, by name, from the audit store.
_SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
    for table in _TABLES
    for op in ("UPDATE", "DELETE")
)
_POSTGRES_TRIGGERS = (
    """CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$""",
    *(
        statement
        for table in _TABLES
        for statement in (
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
            f"CREATE TRIGGER {table}_append_only_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
        )
    ),
)

MIGRATION = Migration(
    3,
    "audit",
    (
        """CREATE TABLE audit (
    seq         {bigint} PRIMARY KEY,
    ts          {float} NOT NULL,
    actor_id    TEXT,
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    decision    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
)""",
        "CREATE INDEX audit_ts ON audit (ts)",
        # Ed25519-signed checkpoints of the chain head (seq, hash, count), each chained to the previous one.
        """CREATE TABLE audit_checkpoints (
    id          {bigint} PRIMARY KEY,
    ts          {float} NOT NULL,
    seq         {bigint} NOT NULL,
    hash        TEXT NOT NULL,
    count       {bigint} NOT NULL,
    prev        TEXT NOT NULL,
    key         TEXT NOT NULL,
    signature   TEXT NOT NULL
)""",
        PerDialect(sqlite=_SQLITE_TRIGGERS, postgresql=_POSTGRES_TRIGGERS),
    ),
)
