"""0015: approvals (human in the loop) for held tool calls, short-lived agent tokens, and keys that act as an owner."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    15,
    "approvals",
    (
        # One held tool call: bound to the agent, the run ("" when none), the tool and the SHA-256 of its
        # canonical arguments. status: pending -> approved -> consumed (single use), or pending -> denied.
        # `arguments` (canonical JSON, capped) is for the approver to read; the audit log holds only the hash.
        """CREATE TABLE agent_approvals (
    id          TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    tool        TEXT NOT NULL,
    args_sha256 TEXT NOT NULL,
    arguments   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  {float} NOT NULL,
    expires_at  {float} NOT NULL,
    decided_by  TEXT NOT NULL DEFAULT '',
    decided_at  {float},
    note        TEXT NOT NULL DEFAULT '',
    consumed_at {float}
)""",
        "CREATE INDEX agent_approvals_binding ON agent_approvals (agent_id, tool, args_sha256)",
        "CREATE INDEX agent_approvals_created ON agent_approvals (created_at)",
        # Every minted agent token (the token itself is never stored: it is signed, not looked up);
        # revoked_at set: refused from the next key refresh on.
        """CREATE TABLE agent_tokens (
    id          TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    issued_by   TEXT NOT NULL,
    created_at  {float} NOT NULL,
    expires_at  {float} NOT NULL,
    revoked_at  {float}
)""",
        "CREATE INDEX agent_tokens_agent ON agent_tokens (agent_id)",
        # A key that points at an owner acts as that person: it approves their agents' held calls and mints
        # their agents' tokens (never an agent key: an agent cannot approve itself).
        "ALTER TABLE keys ADD COLUMN owner_id TEXT",
    ),
)
