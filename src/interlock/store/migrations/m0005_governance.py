"""0005: organisations contain teams, teams contain keys; budgets and rate limits attach to any level."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    5,
    "governance",
    (
        """CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  {float} NOT NULL
)""",
        """CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    created_at  {float} NOT NULL,
    UNIQUE (org_id, name)
)""",
        "ALTER TABLE keys ADD COLUMN team_id TEXT REFERENCES teams (id)",
        # scope: org, team or key; period: day, month (UTC) or total. Money is integer micro-dollars.
        """CREATE TABLE budgets (
    scope        TEXT NOT NULL,
    scope_id     TEXT NOT NULL,
    period       TEXT NOT NULL,
    limit_micros {bigint} NOT NULL,
    updated_at   {float} NOT NULL,
    PRIMARY KEY (scope, scope_id, period)
)""",
        # scope: key, team or model. Per minute; NULL means no limit of that kind.
        """CREATE TABLE rate_limits (
    scope       TEXT NOT NULL,
    scope_id    TEXT NOT NULL,
    rpm         {bigint},
    tpm         {bigint},
    updated_at  {float} NOT NULL,
    PRIMARY KEY (scope, scope_id)
)""",
        "ALTER TABLE usage ADD COLUMN team_id TEXT",
        "ALTER TABLE usage ADD COLUMN org_id TEXT",
        "ALTER TABLE usage ADD COLUMN reference_cost_micros {bigint} NOT NULL DEFAULT 0",
        "CREATE INDEX usage_team_ts ON usage (team_id, ts)",
        "CREATE INDEX usage_org_ts ON usage (org_id, ts)",
    ),
)
