"""Budget-threshold alerts: when a budget's period has spent a configured share of its limit (`[alerts]
budget_thresholds`, e.g. 80% and 100%), an audit entry `budget.threshold_alert` and, with a webhook
configured, a signed `budget.threshold` webhook.

A periodic job, off the request path: every `interval_s` it reads each budget's spend (the counters, or the
ledger while no counter holds the period) and claims each crossed threshold in the store's `budget_alerts`
table. Only the claim that inserts the row sends, so each budget, period and threshold alerts once, whatever
the number of replicas or restarts. Spend counts settled cost, not reservations in flight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from interlock.audit.log import AuditEvent, AuditLog
from interlock.background import Periodic
from interlock.governance.admission import Governance, period_start
from interlock.governance.webhook import Webhook
from interlock.store.records import BudgetRecord

log = logging.getLogger(__name__)
EVENT = "budget.threshold"


class AlertStore(Protocol):
    """What the alerts read and claim in the store."""

    async def list_budgets(self) -> list[BudgetRecord]: ...
    async def claim_budget_alert(
        self, scope: str, scope_id: str, period: str, period_key: str, threshold: float, at: float
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """One budget's period crossing one threshold."""

    budget: BudgetRecord
    period_key: str  # "d:2026-01-31", "m:2026-01" or "t"
    threshold: float
    spent_micros: int
    reserved_micros: int

    def payload(self) -> dict[str, object]:
        """The webhook's `data`."""
        b = self.budget
        return {
            "budget": {"scope": b.scope, "scope_id": b.scope_id, "period": b.period, "limit_micros": b.limit_micros},
            "period_key": self.period_key,
            "threshold": self.threshold,
            "spent_micros": self.spent_micros,
            "reserved_micros": self.reserved_micros,
        }


class BudgetAlerts:
    """Checks every budget periodically against the thresholds; audits and sends what it claims."""

    def __init__(
        self,
        store: AlertStore,
        governance: Governance,
        audit: AuditLog,
        thresholds: Sequence[float],
        *,
        webhook: Webhook | None = None,
        interval_s: float = 30.0,
    ) -> None:
        self._store, self._governance, self._audit, self._webhook = store, governance, audit, webhook
        self.thresholds = sorted(set(thresholds))
        self._checker = Periodic(self.check, interval_s, name="interlock-budget-alerts", failure="budget check failed")

    def start(self) -> None:
        """Check in the background (and start the webhook's delivery worker)."""
        if self._webhook is not None:
            self._webhook.start()
        self._checker.start()

    async def close(self) -> None:
        """Stop checking and delivering."""
        await self._checker.close()
        if self._webhook is not None:
            await self._webhook.close()

    async def check(self, now: float | None = None) -> list[BudgetAlert]:
        """Claim, audit and send every threshold crossed in a budget's current period; the alerts sent."""
        now = time.time() if now is None else now
        sent: list[BudgetAlert] = []
        for budget in await self._store.list_budgets():
            if budget.limit_micros <= 0:
                continue
            spent, reserved = await self._governance.budget_spent(budget, now)
            key = period_start(budget.period, now)[0]
            for t in self.thresholds:
                if spent < t * budget.limit_micros:
                    break
                if await self._store.claim_budget_alert(budget.scope, budget.scope_id, budget.period, key, t, now):
                    alert = BudgetAlert(budget, key, t, spent, reserved)
                    await self._announce(alert)
                    sent.append(alert)
        return sent

    async def _announce(self, alert: BudgetAlert) -> None:
        b = alert.budget
        delivery = self._webhook.send(EVENT, alert.payload()) if self._webhook is not None else None
        await self._audit.append(
            AuditEvent.admin(
                "budget.threshold_alert",
                actor_id=None,
                actor_name="budget-alerts",
                target=f"{b.scope}:{b.scope_id}",
                period=b.period,
                period_key=alert.period_key,
                threshold=alert.threshold,
                spent_micros=alert.spent_micros,
                limit_micros=b.limit_micros,
                webhook=delivery or ("dropped" if self._webhook is not None else "off"),
            )
        )


def webhook_failure_auditor(audit: AuditLog) -> Callable[[str, str, str], None]:
    """A `Webhook.on_failure` that audits an event never delivered (without blocking)."""

    def record(event: str, delivery: str, why: str) -> None:
        audit.record(
            AuditEvent.denial(
                "webhook.delivery_failed",
                actor_id=None,
                actor_name="webhook",
                reason=why,
                target=event,
                delivery=delivery,
            )
        )

    return record
