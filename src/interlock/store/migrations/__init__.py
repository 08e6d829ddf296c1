"""The schema's numbered migrations, one module each, written once for SQLite and PostgreSQL.

To change the schema, add `mNNNN_<name>.py` with the next number and append it here; never edit one that has
shipped: databases record the numbers they applied (`schema_version`) and skip them. `store.schema.migrate`
applies the list.
"""

from interlock.store.migrations import (
    m0001_initial,
    m0002_routing,
    m0003_audit,
    m0004_key_policy,
    m0005_governance,
    m0006_key_suspension,
    m0007_key_role,
    m0008_audit_triggers,
    m0009_responses,
    m0010_max_concurrent,
    m0011_guardrail_policies,
    m0012_outcomes,
    m0013_agents,
    m0014_run_caps,
    m0015_approvals,
    m0016_mcp_pins,
    m0017_flywheel,
    m0018_traffic_signals,
    m0019_variants,
)
from interlock.store.migrations.base import Migration

MIGRATIONS: tuple[Migration, ...] = (
    m0001_initial.MIGRATION,
    m0002_routing.MIGRATION,
    m0003_audit.MIGRATION,
    m0004_key_policy.MIGRATION,
    m0005_governance.MIGRATION,
    m0006_key_suspension.MIGRATION,
    m0007_key_role.MIGRATION,
    m0008_audit_triggers.MIGRATION,
    m0009_responses.MIGRATION,
    m0010_max_concurrent.MIGRATION,
    m0011_guardrail_policies.MIGRATION,
    m0012_outcomes.MIGRATION,
    m0013_agents.MIGRATION,
    m0014_run_caps.MIGRATION,
    m0015_approvals.MIGRATION,
    m0016_mcp_pins.MIGRATION,
    m0017_flywheel.MIGRATION,
    m0018_traffic_signals.MIGRATION,
    m0019_variants.MIGRATION,
)
