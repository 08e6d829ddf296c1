"""Spend-velocity guard: the runaway-agent case, where a key loops and its spend per minute spikes.

Every `interval_s` it reads the ledger's spend per key per minute (from the shared store, so it sees
every replica's traffic) and compares each key's last complete minute with its average over the
`history_min` minutes before. A key that spends at least `min_micros` in that minute and more than
`factor` times its norm raises an audit event `spend.velocity_alert`; with `suspend` on, the key is
also suspended (reversible, `POST /admin/keys/{id}/resume`). Each key alerts at most once a minute
per replica.

The same check runs per agent: an agent's rows are summed over every key and token it uses (the
ledger's `agent_id`), so an agent spread over several credentials is judged as one. Its alert names the
agent (`target`, `agent_id`, `owner_id`); with `suspend` on, the agent is suspended (`interlock agents
resume` lifts it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from interlock.audit.log import AuditEvent, AuditLog
from interlock.auth.keys import Keys
from interlock.background import Periodic

log = logging.getLogger(__name__)


class SpendHistory(Protocol):
    """What the guard reads from the store."""

    async def key_spend_by_minute(self, since: float) -> list[tuple[str, int, int]]: ...
    async def agent_spend_by_minute(self, since: float) -> list[tuple[str, int, int]]: ...
    async def set_agent_status(self, agent_id: str, status: Literal["active", "suspended", "removed"]) -> bool: ...


@dataclass(frozen=True, slots=True)
class Alert:
    """One key's (or one agent's) spike."""

    key_id: str  # the agent's id when `kind` is "agent"
    minute: int
    spent_micros: int
    norm_micros: float
    kind: Literal["key", "agent"] = "key"


def find_spikes(
    rows: list[tuple[str, int, int]],
    minute: int,
    history: int,
    factor: float,
    minimum: int,
    kind: Literal["key", "agent"] = "key",
) -> list[Alert]:
    """Keys whose spend in `minute` is at least `minimum` and above `factor` x their mean of the previous minutes."""
    by_key: dict[str, dict[int, int]] = {}
    for key_id, m, micros in rows:
        by_key.setdefault(key_id, {})[m] = micros
    alerts = []
    for key_id, spend in by_key.items():
        last = spend.get(minute, 0)
        norm = sum(spend.get(m, 0) for m in range(minute - history, minute)) / history
        if last >= minimum and last > factor * norm:
            alerts.append(Alert(key_id, minute, last, norm, kind))
    return alerts


class VelocityGuard:
    """Checks spend velocity periodically; alerts and optionally suspends."""

    def __init__(
        self,
        store: SpendHistory,
        keys: Keys,
        audit: AuditLog,
        *,
        factor: float,
        min_micros: int,
        history_min: int = 60,
        suspend: bool = False,
        interval_s: float = 60.0,
    ) -> None:
        self._store, self._keys, self._audit = store, keys, audit
        self.factor, self.min_micros, self.history, self.suspend = factor, min_micros, history_min, suspend
        self._alerted: set[tuple[str, int]] = set()
        self._checker = Periodic(
            self.check, interval_s, name="interlock-velocity-guard", failure="spend-velocity check failed"
        )

    def start(self) -> None:
        """Run checks in the background."""
        self._checker.start()

    async def close(self) -> None:
        """Stop checking."""
        await self._checker.close()

    async def check(self, now: float | None = None) -> list[Alert]:
        """Look at the last complete minute; audit (and suspend) every spiking key and agent."""
        now = time.time() if now is None else now
        minute = int(now // 60) - 1
        since = (minute - self.history) * 60
        rows = await self._store.key_spend_by_minute(since)
        alerts = [
            a
            for a in find_spikes(rows, minute, self.history, self.factor, self.min_micros)
            if (a.key_id, a.minute) not in self._alerted
        ]
        by_agent = await self._store.agent_spend_by_minute(since)
        agents = [
            a
            for a in find_spikes(by_agent, minute, self.history, self.factor, self.min_micros, "agent")
            if (a.key_id, a.minute) not in self._alerted
        ]
        for a in agents:
            await self._agent_alert(a)
        for a in alerts:
            self._alerted.add((a.key_id, a.minute))
            reason = (
                f"spent ${a.spent_micros / 1e6:.4f} in one minute, "
                f"over {self.factor:g}x its norm of ${a.norm_micros / 1e6:.4f}"
            )
            if self.suspend:
                await self._keys.suspend(a.key_id, "spend velocity: " + reason)
            await self._audit.append(
                AuditEvent.admin(
                    "spend.velocity_alert",
                    actor_id=None,
                    actor_name="velocity-guard",
                    target=a.key_id,
                    spent_micros=a.spent_micros,
                    norm_micros=round(a.norm_micros),
                    suspended=self.suspend,
                    note=reason,
                )
            )
        self._alerted = {x for x in self._alerted if x[1] >= minute - 1}
        return alerts + agents

    async def _agent_alert(self, a: Alert) -> None:
        """Audit (and suspend) one spiking agent."""
        self._alerted.add((a.key_id, a.minute))
        agent = self._keys.agents.agents.get(a.key_id)
        reason = (
            f"agent spent ${a.spent_micros / 1e6:.4f} in one minute over all its keys, "
            f"over {self.factor:g}x its norm of ${a.norm_micros / 1e6:.4f}"
        )
        suspended = self.suspend and agent is not None and agent.status == "active"
        if suspended:
            await self._store.set_agent_status(a.key_id, "suspended")
            await self._keys.refresh()
        await self._audit.append(
            AuditEvent.admin(
                "spend.velocity_alert",
                actor_id=None,
                actor_name="velocity-guard",
                target=a.key_id,
                agent_id=a.key_id,
                agent_name=agent.name if agent else "",
                owner_id=agent.owner_id if agent else "",
                spent_micros=a.spent_micros,
                norm_micros=round(a.norm_micros),
                suspended=suspended,
                note=reason,
            )
        )
