"""0007: a key's rights on the admin API: '' (none), 'admin_read' (GET /admin/* only)."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(7, "key_role", ("ALTER TABLE keys ADD COLUMN role TEXT NOT NULL DEFAULT ''",))
