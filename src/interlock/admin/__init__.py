"""Admin services: what the admin API, the CLI and the dashboard do to keys, the hierarchy, budgets and limits.

Each service validates its input, writes through the store, refreshes the caches that depend on it and
audits the action, in one place (see `admin.context`). Callers authenticate; services check the role.
"""

from interlock.admin.context import AdminContext, AuditSink, audit_action
from interlock.admin.guardrails import (
    GuardrailPolicy,
    GuardrailRef,
    GuardrailSet,
    delete_guardrail_policy,
    list_guardrail_policies,
    set_guardrail_policy,
)
from interlock.admin.keys import (
    CreatedKey,
    KeyCreate,
    KeyStatus,
    KeySuspend,
    create_key,
    key_status,
    list_keys,
    resume_key,
    revoke_key,
    suspend_key,
)
from interlock.admin.limits import (
    BudgetRef,
    BudgetSet,
    BudgetStatus,
    RateLimitRef,
    RateLimitSet,
    delete_budget,
    delete_rate_limit,
    list_budgets,
    list_rate_limits,
    set_budget,
    set_rate_limit,
)
from interlock.admin.orgs import OrgCreate, TeamCreate, create_org, create_team, list_orgs, list_teams
from interlock.admin.outcomes import OutcomeReport, RoiQuery, RoiReport, RoiRow, report_outcome, roi_report
from interlock.admin.spend import SpendQuery, SpendReport, spend_report

__all__ = [
    "AdminContext",
    "AuditSink",
    "BudgetRef",
    "BudgetSet",
    "BudgetStatus",
    "CreatedKey",
    "GuardrailPolicy",
    "GuardrailRef",
    "GuardrailSet",
    "KeyCreate",
    "KeyStatus",
    "KeySuspend",
    "OrgCreate",
    "OutcomeReport",
    "RateLimitRef",
    "RateLimitSet",
    "RoiQuery",
    "RoiReport",
    "RoiRow",
    "SpendQuery",
    "SpendReport",
    "TeamCreate",
    "audit_action",
    "create_key",
    "create_org",
    "create_team",
    "delete_budget",
    "delete_guardrail_policy",
    "delete_rate_limit",
    "key_status",
    "list_budgets",
    "list_guardrail_policies",
    "list_keys",
    "list_orgs",
    "list_rate_limits",
    "list_teams",
    "report_outcome",
    "resume_key",
    "revoke_key",
    "roi_report",
    "set_budget",
    "set_guardrail_policy",
    "set_rate_limit",
    "spend_report",
    "suspend_key",
]
