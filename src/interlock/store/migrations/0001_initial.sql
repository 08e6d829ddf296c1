-- Keys are stored as SHA-256 hashes; the plaintext is shown once, at creation.
CREATE TABLE keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    owner       TEXT NOT NULL DEFAULT '',
    hash        TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    models      TEXT NOT NULL DEFAULT '[]',
    created_at  REAL NOT NULL,
    expires_at  REAL,
    revoked_at  REAL
);

-- One row per authenticated request. Money is integer micro-dollars.
CREATE TABLE usage (
    request_id        TEXT PRIMARY KEY,
    ts                REAL NOT NULL,
    key_id            TEXT,
    endpoint          TEXT NOT NULL,
    alias             TEXT NOT NULL,
    provider          TEXT NOT NULL,
    upstream_model    TEXT NOT NULL,
    stream            INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    usage_source      TEXT NOT NULL,
    cost_micros       INTEGER NOT NULL,
    price_version     TEXT NOT NULL,
    latency_ms        REAL NOT NULL,
    ttft_ms           REAL,
    status            INTEGER NOT NULL,
    error             TEXT
);
CREATE INDEX usage_ts ON usage (ts);
CREATE INDEX usage_key_ts ON usage (key_id, ts);
