"""0009: the Responses API's stored responses, per key, each with its expiry (`[responses] retention_s`)."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    9,
    "responses",
    (
        # owner: the key id (or "admin") that created it; only it may read, continue or delete it.
        # body: the Responses object as JSON; conversation: the chat messages a follow-up turn continues from.
        """CREATE TABLE responses (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    created_at    {float} NOT NULL,
    expires_at    {float} NOT NULL,
    body          TEXT NOT NULL,
    conversation  TEXT NOT NULL
)""",
        "CREATE INDEX responses_expires_at ON responses (expires_at)",
    ),
)
