"""0006: a key can be suspended (reversibly) by the spend-velocity guard or an admin."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    6,
    "key_suspension",
    (
        "ALTER TABLE keys ADD COLUMN suspended_at {float}",
        "ALTER TABLE keys ADD COLUMN suspended_reason TEXT NOT NULL DEFAULT ''",
    ),
)
