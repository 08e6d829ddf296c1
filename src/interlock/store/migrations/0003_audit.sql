-- Tamper-evident audit log (audit/log.py): admin actions and denials, each chained to the previous
-- entry by hash. Rows are only ever inserted; seq runs 1, 2, 3, ... with no gaps.
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,
    ts          REAL NOT NULL,
    actor_id    TEXT,
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    decision    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_ts ON audit (ts);
-- Ed25519-signed checkpoints of the chain head (seq, hash, count), each chained to the previous one.
CREATE TABLE audit_checkpoints (
    id          INTEGER PRIMARY KEY,
    ts          REAL NOT NULL,
    seq         INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    count       INTEGER NOT NULL,
    prev        TEXT NOT NULL,
    key         TEXT NOT NULL,
    signature   TEXT NOT NULL
);
