"""0019: variants and rollouts: the variant and model version on ledger rows, run-time weights, canary decisions."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    19,
    "variants",
    (
        # variant: which of the alias's variants answered ("" when it has none); model_version: the served
        # file's SHA-256 (16 hex digits) for local models.
        "ALTER TABLE usage ADD COLUMN variant TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE usage ADD COLUMN model_version TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX usage_variant ON usage (alias, variant, ts) WHERE variant <> ''",
        # Weights set at run time (an admin, or the canary controller), winning over the config's.
        """CREATE TABLE variant_weights (
    alias       TEXT NOT NULL,
    variant     TEXT NOT NULL,
    weight      {float} NOT NULL,
    updated_at  {float} NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (alias, variant)
)""",
        # One canary of an alias: `fingerprint` names its config (canary, baseline, rule); state running,
        # promoted or rolled_back; the first replica to decide writes the decision, the others read it.
        """CREATE TABLE rollouts (
    alias        TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    canary       TEXT NOT NULL,
    baseline     TEXT NOT NULL,
    state        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    started_at   {float} NOT NULL,
    decided_at   {float},
    PRIMARY KEY (alias, fingerprint)
)""",
    ),
)
