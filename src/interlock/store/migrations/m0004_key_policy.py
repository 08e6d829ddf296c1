"""0004: per-key policy.

Data residency ('restricted' keeps requests on local/sovereign deployments) and an opt-in response cache TTL
(0 = off).
"""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    4,
    "key_policy",
    (
        "ALTER TABLE keys ADD COLUMN residency TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE keys ADD COLUMN cache_ttl_s {bigint} NOT NULL DEFAULT 0",
    ),
)
