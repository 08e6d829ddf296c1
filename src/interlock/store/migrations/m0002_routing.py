"""0002: which deployment served the request, and how many attempts failover made."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    2,
    "routing",
    (
        "ALTER TABLE usage ADD COLUMN deployment TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE usage ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1",
    ),
)
