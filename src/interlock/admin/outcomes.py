"""Outcomes and ROI: a caller reports how a request or a run ended; finance reads what completed work cost.

`report_outcome` stores the outcome of one of the caller's own requests (its `x-request-id`) or runs (the
`x-interlock-run-id` its requests carried), with a task type and `completed` or `failed`. A report is
idempotent: the same key reporting on the same request or run and task type again changes that one
outcome's status (the latest report wins), never counts twice.

`roi_report` prices each task type's completed outcomes at the manual work they replace (`[roi.task_types]`:
minutes and an hourly cost) and sets that against the AI cost of the outcomes' ledger rows, failed outcomes
included (failures cost money too): AI cost per completed outcome = AI cost / completed; ROI = (labour value -
AI cost) / AI cost. Beside it, the savings against the reference model, as in the spend report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from interlock.admin.context import AdminContext
from interlock.auth.keys import Principal, require_admin
from interlock.errors import BadRequest, Forbidden, NotFound
from interlock.store.outcome_queries import OutcomeCost, OutcomeKind, OutcomeRecord, OutcomeStatus

_ID = r"^[A-Za-z0-9._:-]{1,128}$"  # request ids, and what `x-interlock-run-id` accepts
MICROS = 1_000_000
RoiGroup = Literal["task_type", "team", "key"]


class OutcomeReport(BaseModel):
    """The body of POST /v1/outcomes: exactly one of `request_id` and `run_id`."""

    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(default=None, pattern=_ID, description="an `x-request-id` of the caller's")
    run_id: str | None = Field(default=None, pattern=_ID, description="an `x-interlock-run-id` the caller sent")
    task_type: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="a task type of `[roi.task_types]`")
    status: OutcomeStatus

    @model_validator(mode="after")
    def _one_subject(self) -> OutcomeReport:
        if (self.request_id is None) == (self.run_id is None):
            raise ValueError("give exactly one of request_id and run_id")
        return self

    @property
    def subject(self) -> tuple[OutcomeKind, str]:
        """("request", id) or ("run", id)."""
        return ("request", self.request_id) if self.request_id is not None else ("run", self.run_id or "")


async def report_outcome(ctx: AdminContext, actor: Principal, report: OutcomeReport) -> tuple[OutcomeRecord, bool]:
    """Store the outcome of one of the caller's requests or runs; True when it is new (not a repeat)."""
    if actor.key_id is None and not actor.is_admin:
        raise Forbidden("outcomes are reported with the key that made the requests")
    known = ctx.settings.roi.task_types
    if known and report.task_type not in known:
        raise BadRequest(
            f"task_type '{report.task_type}' is not configured; use one of: {', '.join(sorted(known))}",
            param="task_type",
        )
    kind, subject = report.subject
    owner = actor.key_id or ""
    await ctx.store.flush()
    if not await ctx.store.has_usage(owner, kind, subject):
        what = f"request '{subject}'" if kind == "request" else f"request with x-interlock-run-id '{subject}'"
        raise NotFound(f"this key has no {what} in the ledger", code=f"{kind}_not_found")
    now = time.time()
    record = OutcomeRecord(owner, kind, subject, report.task_type, report.status, actor.team_id, actor.org_id, now, now)
    return record, await ctx.store.upsert_outcome(record)


class RoiQuery(BaseModel):
    """What to report (the query of GET /admin/roi)."""

    group: RoiGroup = "task_type"
    since: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="only outcomes reported from this epoch second on"
    )


@dataclass(frozen=True, slots=True)
class RoiRow:
    """Outcomes of one group, their AI cost and the labour they replaced (money in micro-dollars)."""

    group: str
    name: str
    completed: int
    failed: int
    cost_micros: int  # the AI cost of every outcome's ledger rows, failed ones included
    cost_per_completed_micros: int | None
    labour_hours: float
    labour_value_micros: int
    roi: float | None  # (labour value - AI cost) / AI cost; None without AI cost
    reference_cost_micros: int
    savings_micros: int  # the reference model's cost of the same tokens, less the AI cost
    unpriced: int = 0  # completed outcomes of task types without `[roi.task_types]` minutes


@dataclass(frozen=True, slots=True)
class RoiReport:
    """ROI per group, largest labour value first, and the totals."""

    group: RoiGroup
    rows: list[RoiRow]
    total: RoiRow
    summary: dict[str, Any]


def _label(c: OutcomeCost, group: RoiGroup) -> tuple[str, str]:
    if group == "task_type":
        return c.task_type, ""
    if group == "team":
        return c.team_id or "-", c.team_name
    return c.key_id or "admin", c.key_name


Pricing = Callable[[str], tuple[Decimal, Decimal] | None]  # task type -> (minutes, hourly USD)


def _combine(group: str, name: str, parts: Iterable[OutcomeCost], price: Pricing) -> RoiRow:
    completed = failed = cost = ref = unpriced = 0
    minutes, value = Decimal(0), Decimal(0)
    for c in parts:
        cost, ref = cost + c.cost_micros, ref + c.reference_cost_micros
        if c.status == "failed":
            failed += c.outcomes
            continue
        completed += c.outcomes
        task = price(c.task_type)
        if task is None:
            unpriced += c.outcomes
            continue
        minutes += task[0] * c.outcomes
        value += task[0] * c.outcomes * task[1] / 60
    value_micros = int(value * MICROS)
    return RoiRow(
        group,
        name,
        completed,
        failed,
        cost,
        cost // completed if completed else None,
        round(float(minutes / 60), 2),
        value_micros,
        round((value_micros - cost) / cost, 4) if cost else None,
        ref,
        ref - cost,
        unpriced,
    )


async def roi_report(ctx: AdminContext, actor: Principal, query: RoiQuery) -> RoiReport:
    """Outcomes per task type, team or key, with AI cost, labour replaced, ROI and savings."""
    require_admin(actor, write=False)
    await ctx.store.flush()
    costs = await ctx.store.outcome_costs(query.since)
    tasks = ctx.settings.roi.task_types

    def price(task_type: str) -> tuple[Decimal, Decimal] | None:
        t = tasks.get(task_type)
        return None if t is None else (t.minutes, t.hourly_usd)

    groups: dict[tuple[str, str], list[OutcomeCost]] = {}
    for c in costs:
        groups.setdefault(_label(c, query.group), []).append(c)
    rows = [_combine(g, n, parts, price) for (g, n), parts in groups.items()]
    rows.sort(key=lambda r: (-r.labour_value_micros, -r.cost_micros, r.group))
    total = _combine("total", "", costs, price)
    return RoiReport(query.group, rows, total, _summary(total, ctx.settings.governance.reference_model))


def _summary(t: RoiRow, reference: str) -> dict[str, Any]:
    text = (
        f"{t.completed} completed and {t.failed} failed outcomes cost ${t.cost_micros / MICROS:,.6f} of AI "
        f"and replaced {t.labour_hours:,.2f} hours of manual work worth ${t.labour_value_micros / MICROS:,.2f}"
    )
    if t.roi is not None:
        text += f" (ROI {t.roi * 100:,.0f}%)"
    if reference and t.reference_cost_micros:
        text += f"; on {reference} the same requests would have cost ${t.reference_cost_micros / MICROS:,.6f}"
    if t.unpriced:
        text += f"; {t.unpriced} completed outcomes have a task type without [roi.task_types] minutes"
    return {
        "completed": t.completed,
        "failed": t.failed,
        "cost_micros": t.cost_micros,
        "labour_value_micros": t.labour_value_micros,
        "roi": t.roi,
        "reference_model": reference or None,
        "reference_cost_micros": t.reference_cost_micros,
        "savings_micros": t.savings_micros,
        "text": text,
    }
