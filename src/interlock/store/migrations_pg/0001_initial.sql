-- PostgreSQL dialect of migrations/0001_initial.sql: keep the two in step (same numbers, same columns).
-- Keys are stored as SHA-256 hashes; the plaintext is shown once, at creation.
CREATE TABLE keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    owner       TEXT NOT NULL DEFAULT '',
    hash        TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    models      TEXT NOT NULL DEFAULT '[]',
    created_at  DOUBLE PRECISION NOT NULL,
    expires_at  DOUBLE PRECISION,
    revoked_at  DOUBLE PRECISION
);

-- One row per authenticated request. Money is integer micro-dollars.
CREATE TABLE usage (
    request_id        TEXT PRIMARY KEY,
    ts                DOUBLE PRECISION NOT NULL,
    key_id            TEXT,
    endpoint          TEXT NOT NULL,
    alias             TEXT NOT NULL,
    provider          TEXT NOT NULL,
    upstream_model    TEXT NOT NULL,
    stream            BOOLEAN NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    usage_source      TEXT NOT NULL,
    cost_micros       BIGINT NOT NULL,
    price_version     TEXT NOT NULL,
    latency_ms        DOUBLE PRECISION NOT NULL,
    ttft_ms           DOUBLE PRECISION,
    status            INTEGER NOT NULL,
    error             TEXT
);
CREATE INDEX usage_ts ON usage (ts);
CREATE INDEX usage_key_ts ON usage (key_id, ts);
