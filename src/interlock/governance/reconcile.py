"""Reconciliation: the budget counters (Redis, or this process) checked against the ledger, and corrected.

Redis holds the counters; the ledger holds the truth. Every `interval_s` each budget's current period
is compared: the ledger's spend for it (after this replica's queued rows are flushed) against the
counter's `spent`. A counter behind the ledger (a settlement that failed for good, a counter restored
from an old snapshot) is raised to the ledger's figure, and the correction is written to the audit log
with both numbers. A counter ahead of the ledger is left alone: it is on the safe side (requests that
settled on other replicas whose rows are not flushed yet, or a double count after a re-seed), and
lowering it could let spend pass the budget. A bucket that does not exist yet is not created here: the
next admission seeds it from the ledger.
"""

from __future__ import annotations

import logging
import time

from interlock.audit.log import AuditEvent, AuditLog
from interlock.background import Periodic
from interlock.governance.admission import BudgetStore, Governance, budget_bucket, period_start

log = logging.getLogger(__name__)


class Reconciler:
    """Compares every budget's counter with the ledger on a timer, raising counters that fell behind."""

    def __init__(self, governance: Governance, store: BudgetStore, audit: AuditLog | None, interval_s: float) -> None:
        self._gov = governance
        self._store = store
        self._audit = audit
        self._timer = Periodic(
            self.reconcile,
            interval_s,
            name="interlock-budget-reconcile",
            failure="budget reconciliation failed; trying again at the next interval",
        )

    def start(self) -> None:
        """Reconcile every interval from now on."""
        self._timer.start()

    async def close(self) -> None:
        """Stop."""
        await self._timer.close()

    async def reconcile(self, now: float | None = None) -> list[tuple[str, int, int]]:
        """One pass: (bucket, counter, ledger) for every counter raised."""
        now = time.time() if now is None else now
        await self._store.flush()
        raised: list[tuple[str, int, int]] = []
        for rule in await self._store.list_budgets():
            name = budget_bucket(rule, now)
            ledger = await self._store.spent_since(rule.scope, rule.scope_id, period_start(rule.period, now)[1])
            before = await self._gov.counters.raise_spent(name, ledger)
            if before is None or before >= ledger:
                continue
            raised.append((name, before, ledger))
            log.warning("budget %s: counter %d behind the ledger %d micro-dollars; raised", name, before, ledger)
            if self._audit is not None:
                await self._audit.append(
                    AuditEvent.admin(
                        "budget.reconciled",
                        actor_id=None,
                        actor_name="interlock",
                        target=f"{rule.scope}:{rule.scope_id}",
                        bucket=name,
                        counter_micros=before,
                        ledger_micros=ledger,
                    )
                )
        return raised
