"""`Store`: what the code above asks of a store, whichever database holds it (SqliteStore, PostgresStore)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from interlock.store.agent_queries import AgentStore
from interlock.store.approval_queries import ApprovalStore
from interlock.store.batching import LedgerState
from interlock.store.flywheel_queries import FlywheelStore
from interlock.store.guardrail_queries import GuardrailPolicyRecord
from interlock.store.ledger_queries import LedgerQueryStore
from interlock.store.mcp_queries import McpStore
from interlock.store.outcome_queries import OutcomeCost, OutcomeKind, OutcomeRecord
from interlock.store.records import (
    BudgetRecord,
    KeyRecord,
    OrgRecord,
    Period,
    RateLimitRecord,
    Scope,
    SpendGroup,
    SpendRow,
    TeamRecord,
    UsageRecord,
)
from interlock.store.response_queries import ResponseRecord
from interlock.store.run_queries import RunStore
from interlock.store.signal_queries import SignalStore
from interlock.store.variant_queries import VariantStore


class Store(
    AgentStore, ApprovalStore, FlywheelStore, RunStore, McpStore, SignalStore, LedgerQueryStore, VariantStore, Protocol
):
    """Keys, the usage ledger and the governance tables. Ledger writes are queued, never blocking a request."""

    # lifecycle: the async pair for the server, the blocking pair for the command line
    async def open(self) -> None:
        """Apply migrations, connect and start the ledger writer."""
        ...

    async def close(self) -> None:
        """Flush every queued row, then stop."""
        ...

    def open_sync(self) -> None:
        """`open`, blocking."""
        ...

    def close_sync(self) -> None:
        """`close`, blocking."""
        ...

    def is_open(self) -> bool:
        """Whether the ledger writer is running."""
        ...

    def ledger_state(self) -> LedgerState:
        """`ok`, `spooling` (rows wait on local disk for the database) or `full` (the spool takes no more)."""
        ...

    # ledger
    def record_usage(self, row: UsageRecord) -> None:
        """Queue one ledger row; it is committed within the flush interval. Never blocks."""
        ...

    async def flush(self) -> None:
        """Wait until every row queued so far is committed."""
        ...

    async def usage_rows(self, limit: int = 1000) -> list[UsageRecord]:
        """The newest ledger rows, newest first."""
        ...

    async def spend(
        self, group: SpendGroup, since: float | None = None, endpoints: Sequence[str] = ()
    ) -> list[SpendRow]:
        """Spend grouped by org, team, key, model, endpoint or day since `since` (epoch seconds), largest first;
        `endpoints` (when given) keeps only the rows of those endpoints."""
        ...

    async def key_usage(self, key_id: str | None, since: float | None = None) -> list[SpendRow]:
        """One key's spend per model alias since `since`, largest first; `key_id` None: the admin key's requests."""
        ...

    async def spent_since(self, scope: Scope, scope_id: str, since: float) -> int:
        """Micro-dollars spent by one org, team, key or model since `since`."""
        ...

    async def key_spend_by_minute(self, since: float) -> list[tuple[str, int, int]]:
        """(key id, minute index, micro-dollars) since `since`."""
        ...

    # keys
    async def insert_key(self, key: KeyRecord) -> None:
        """Store a new key."""
        ...

    async def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        ...

    async def key_by_hash(self, hash_: str) -> KeyRecord | None:
        """The key with this hash, if any."""
        ...

    async def revoke_key(self, key_id: str, at: float) -> bool:
        """Mark a key revoked; False if there is no such key or it was already revoked."""
        ...

    async def suspend_key(self, key_id: str, at: float | None, reason: str = "") -> bool:
        """Suspend a key (at = None lifts the suspension); False if there is no such key."""
        ...

    # organisations and teams
    async def insert_org(self, org: OrgRecord) -> None:
        """Store a new organisation; DuplicateError if the name is taken."""
        ...

    async def list_orgs(self) -> list[OrgRecord]:
        """Every organisation."""
        ...

    async def insert_team(self, team: TeamRecord) -> None:
        """Store a new team; DuplicateError if its organisation has a team of that name."""
        ...

    async def list_teams(self) -> list[TeamRecord]:
        """Every team."""
        ...

    # budgets and rate limits
    async def upsert_budget(self, b: BudgetRecord) -> None:
        """Create or change a budget."""
        ...

    async def delete_budget(self, scope: Scope, scope_id: str, period: Period) -> bool:
        """Remove a budget; False if there was none."""
        ...

    async def list_budgets(self) -> list[BudgetRecord]:
        """Every budget."""
        ...

    async def upsert_rate_limit(self, r: RateLimitRecord) -> None:
        """Create or change a rate limit."""
        ...

    async def delete_rate_limit(self, scope: Scope, scope_id: str) -> bool:
        """Remove a rate limit; False if there was none."""
        ...

    async def list_rate_limits(self) -> list[RateLimitRecord]:
        """Every rate limit."""
        ...

    async def upsert_guardrail_policy(self, r: GuardrailPolicyRecord) -> None:
        """Create or replace the guardrail policy of one scope."""
        ...

    async def delete_guardrail_policy(self, scope: str, scope_id: str) -> bool:
        """Remove the guardrail policy of one scope; False if there was none."""
        ...

    async def list_guardrail_policies(self) -> list[GuardrailPolicyRecord]:
        """Every scoped guardrail policy."""
        ...

    # the Responses API's stored responses (each readable by the key that created it only)
    async def save_response(self, record: ResponseRecord) -> None:
        """Store a response, deleting those that have expired."""
        ...

    async def get_response(self, response_id: str, owner: str, now: float) -> ResponseRecord | None:
        """The response with this id if `owner` created it and it has not expired."""
        ...

    async def delete_response(self, response_id: str, owner: str) -> bool:
        """Delete a response `owner` created; False if there is none."""
        ...

    # outcomes (ROI), ledger exports and budget alerts
    async def has_usage(self, key_id: str, kind: OutcomeKind, subject_id: str) -> bool:
        """Whether the key ("" the admin key) has a ledger row for this request, or carrying this run id."""
        ...

    async def upsert_outcome(self, r: OutcomeRecord) -> bool:
        """Store an outcome or replace its status (same key, subject and task type); True when it is new."""
        ...

    async def list_outcomes(self, since: float | None = None) -> list[OutcomeRecord]:
        """Outcomes reported (or last changed) since `since`, oldest first."""
        ...

    async def outcome_costs(self, since: float | None = None) -> list[OutcomeCost]:
        """Outcomes since `since` per task type, key, team and status, with the cost of their ledger rows."""
        ...

    async def usage_page(
        self, since: float | None, after: tuple[float, str] | None = None, limit: int = 1000
    ) -> list[UsageRecord]:
        """Up to `limit` ledger rows from `since` on, oldest first, after the row (ts, request id) `after`."""
        ...

    async def claim_budget_alert(
        self, scope: str, scope_id: str, period: str, period_key: str, threshold: float, at: float
    ) -> bool:
        """Claim the alert of one budget, period and threshold; False when it was claimed already."""
        ...
