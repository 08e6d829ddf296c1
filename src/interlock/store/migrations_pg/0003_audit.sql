-- Tamper-evident audit log (audit/log.py): admin actions and denials, each chained to the previous
-- entry by hash. Rows are only ever inserted; seq runs 1, 2, 3, ... with no gaps.
CREATE TABLE audit (
    seq         BIGINT PRIMARY KEY,
    ts          DOUBLE PRECISION NOT NULL,
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
    id          BIGINT PRIMARY KEY,
    ts          DOUBLE PRECISION NOT NULL,
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    count       BIGINT NOT NULL,
    prev        TEXT NOT NULL,
    key         TEXT NOT NULL,
    signature   TEXT NOT NULL
);
-- Append-only, like the SQLite triggers: they stop accidents and naive edits, not an owner of the database
-- (who can drop them); catching that is what `interlock audit verify` is for.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_append_only_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
