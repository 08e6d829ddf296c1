"""0011: guardrail policies set on an org, a team, a key or a model alias (the config holds the default)."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    11,
    "guardrail_policies",
    (
        # rules: the policy as JSON (`guardrails.policy.PolicyRules`); updated_by: who set it, for the dashboard.
        """CREATE TABLE guardrail_policies (
    scope       TEXT NOT NULL,
    scope_id    TEXT NOT NULL,
    rules       TEXT NOT NULL,
    updated_at  {float} NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (scope, scope_id)
)""",
    ),
)
