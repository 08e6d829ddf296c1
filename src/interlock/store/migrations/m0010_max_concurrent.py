"""0010: a cap on requests in flight per key, team or model alias, next to its rates."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(10, "max_concurrent", ("ALTER TABLE rate_limits ADD COLUMN max_concurrent {bigint}",))
