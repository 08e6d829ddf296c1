"""0014: agents' per-run caps and loop thresholds, and the agent's runs found fast on the ledger."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    14,
    "run_caps",
    (
        # caps: the agent's `agents.runs.RunCaps` as JSON ('{}': no caps, default loop thresholds).
        "ALTER TABLE agents ADD COLUMN caps TEXT NOT NULL DEFAULT '{}'",
        # Seeding a run's totals reads its rows (m0012's usage_run index is on (run_id, key_id): an agent's
        # runs are by agent, whatever key or token it used); spend velocity per agent groups by it.
        "CREATE INDEX usage_agent_run ON usage (agent_id, run_id, ts) WHERE agent_id <> ''",
    ),
)
