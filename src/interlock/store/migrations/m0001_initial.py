"""0001: virtual keys and the usage ledger."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    1,
    "initial",
    (
        # Keys are stored as SHA-256 hashes; the plaintext is shown once, at creation.
        """CREATE TABLE keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    owner       TEXT NOT NULL DEFAULT '',
    hash        TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    models      TEXT NOT NULL DEFAULT '[]',
    created_at  {float} NOT NULL,
    expires_at  {float},
    revoked_at  {float}
)""",
        # One row per authenticated request. Money is integer micro-dollars.
        """CREATE TABLE usage (
    request_id        TEXT PRIMARY KEY,
    ts                {float} NOT NULL,
    key_id            TEXT,
    endpoint          TEXT NOT NULL,
    alias             TEXT NOT NULL,
    provider          TEXT NOT NULL,
    upstream_model    TEXT NOT NULL,
    stream            {bool} NOT NULL,
    prompt_tokens     {bigint} NOT NULL,
    completion_tokens {bigint} NOT NULL,
    usage_source      TEXT NOT NULL,
    cost_micros       {bigint} NOT NULL,
    price_version     TEXT NOT NULL,
    latency_ms        {float} NOT NULL,
    ttft_ms           {float},
    status            INTEGER NOT NULL,
    error             TEXT
)""",
        "CREATE INDEX usage_ts ON usage (ts)",
        "CREATE INDEX usage_key_ts ON usage (key_id, ts)",
    ),
)
