"""0012: outcomes of runs and requests (ROI), the run id on ledger rows, and budget alerts already sent."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    12,
    "outcomes",
    (
        # run_id: the caller's `x-interlock-run-id` header ("" when absent), so a run's cost is its rows' sum.
        "ALTER TABLE usage ADD COLUMN run_id TEXT NOT NULL DEFAULT ''",
        # Partial: most rows carry no run id, and the ledger writer should not pay to index them.
        "CREATE INDEX usage_run ON usage (run_id, key_id) WHERE run_id <> ''",
        # One outcome per (reporting key, request or run, task type); a repeated report replaces the status.
        # key_id: the reporting key's id, "" for the admin key (whose ledger rows have no key id).
        """CREATE TABLE outcomes (
    key_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    task_type   TEXT NOT NULL,
    status      TEXT NOT NULL,
    team_id     TEXT,
    org_id      TEXT,
    created_at  {float} NOT NULL,
    updated_at  {float} NOT NULL,
    PRIMARY KEY (key_id, kind, subject_id, task_type)
)""",
        "CREATE INDEX outcomes_updated_at ON outcomes (updated_at)",
        # A budget threshold alert is claimed here before it is sent: once per budget, period and threshold,
        # however many replicas check (the insert that wins sends it).
        """CREATE TABLE budget_alerts (
    scope       TEXT NOT NULL,
    scope_id    TEXT NOT NULL,
    period      TEXT NOT NULL,
    period_key  TEXT NOT NULL,
    threshold   {float} NOT NULL,
    sent_at     {float} NOT NULL,
    PRIMARY KEY (scope, scope_id, period, period_key, threshold)
)""",
    ),
)
