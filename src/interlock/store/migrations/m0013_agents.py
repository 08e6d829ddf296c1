"""0013: governed agents: owners (people), agents tied to an owner, halts (the kill switch), and who on the ledger."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    13,
    "agents",
    (
        # An owner is a person: keys and agents point to one; suspending or removing them stops their agents.
        """CREATE TABLE owners (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL,
    created_at  {float} NOT NULL
)""",
        # policy: the agent's tool policy as JSON (validated by `agents.policy.ToolPolicy` when read).
        """CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    owner_id    TEXT NOT NULL REFERENCES owners (id),
    description TEXT NOT NULL,
    models      TEXT NOT NULL,
    policy      TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  {float} NOT NULL,
    expires_at  {float}
)""",
        "CREATE INDEX agents_owner ON agents (owner_id)",
        # One halt per scope: ('agent', id), ('owner', id) or ('all', ''); lifted by deleting it.
        """CREATE TABLE agent_halts (
    scope       TEXT NOT NULL,
    scope_id    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    halted_by   TEXT NOT NULL,
    halted_at   {float} NOT NULL,
    PRIMARY KEY (scope, scope_id)
)""",
        # A key of kind "agent" authenticates as the agent it points to.
        "ALTER TABLE keys ADD COLUMN agent_id TEXT",
        # Who acted, on every ledger row of an agent ("" for other callers).
        "ALTER TABLE usage ADD COLUMN agent_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE usage ADD COLUMN owner_id TEXT NOT NULL DEFAULT ''",
    ),
)
