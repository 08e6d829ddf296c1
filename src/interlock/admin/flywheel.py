"""Flywheel services: feedback on a caller's own requests and runs, and the captures admins list and erase.

`record_feedback` attaches a metric declared in `[[flywheel.metrics]]` to one of the caller's requests (its
`x-request-id`) or runs (the `x-interlock-run-id` its requests carried); the admin key may give feedback on
any request. An undeclared metric, a value of the wrong type or outside the declared range is a 400 naming
what is accepted. Each piece of feedback is audited (metric, value and subject; never the comment or the
demonstration, which may hold personal data).

`erase_captures` answers a data-protection request: it deletes the captures of one request, key or subject
(the `user` a request named) with the feedback on them and the dataset rows built from them, and audits it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time

from pydantic import BaseModel, ConfigDict, Field, model_validator

from interlock.admin.context import AdminContext, audit_action
from interlock.auth.keys import Principal, require_admin
from interlock.errors import BadRequest, Forbidden, NotFound
from interlock.store.flywheel_queries import CaptureRecord, Erased, FeedbackKind, FeedbackRecord
from interlock.types.base import StrictBool, StrictFloat, StrictInt

_ID = r"^[A-Za-z0-9._:-]{1,128}$"  # request ids, and what `x-interlock-run-id` accepts


class FeedbackReport(BaseModel):
    """The body of POST /v1/feedback: exactly one of `request_id` and `run_id`."""

    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(default=None, pattern=_ID, description="an `x-request-id` of the caller's")
    run_id: str | None = Field(default=None, pattern=_ID, description="an `x-interlock-run-id` the caller sent")
    metric: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="a metric of `[[flywheel.metrics]]`")
    value: StrictBool | StrictInt | StrictFloat = Field(
        description="true/false for a boolean metric, a number for a float one", allow_inf_nan=False
    )
    comment: str | None = Field(default=None, max_length=4000)
    demonstration: str | None = Field(
        default=None, max_length=200_000, description="a corrected answer: preferred over the model's in datasets"
    )

    @model_validator(mode="after")
    def _one_subject(self) -> FeedbackReport:
        if (self.request_id is None) == (self.run_id is None):
            raise ValueError("give exactly one of request_id and run_id")
        return self

    @property
    def subject(self) -> tuple[FeedbackKind, str]:
        """("request", id) or ("run", id)."""
        return ("request", self.request_id) if self.request_id is not None else ("run", self.run_id or "")


def _value(ctx: AdminContext, report: FeedbackReport) -> float:
    """The value as stored (booleans as 0 and 1), after checking it against the declared metric."""
    metrics = {m.name: m for m in ctx.settings.flywheel.metrics}
    declared = metrics.get(report.metric)
    if declared is None:
        names = ", ".join(f"{m.name} ({m.type})" for m in metrics.values()) or "none (declare [[flywheel.metrics]])"
        raise BadRequest(f"metric '{report.metric}' is not declared; declared metrics: {names}", param="metric")
    v = report.value
    if declared.type == "boolean":
        if not isinstance(v, bool):
            raise BadRequest(f"metric '{declared.name}' is boolean: give true or false", param="value")
        return 1.0 if v else 0.0
    if isinstance(v, bool):
        raise BadRequest(f"metric '{declared.name}' is a float: give a number, not {str(v).lower()}", param="value")
    if (declared.min is not None and v < declared.min) or (declared.max is not None and v > declared.max):
        lo = "-inf" if declared.min is None else f"{declared.min:g}"
        hi = "inf" if declared.max is None else f"{declared.max:g}"
        raise BadRequest(f"metric '{declared.name}' takes values from {lo} to {hi}, not {v:g}", param="value")
    return float(v)


async def record_feedback(ctx: AdminContext, actor: Principal, report: FeedbackReport) -> FeedbackRecord:
    """Store (and audit) feedback on one of the caller's requests or runs (the admin's: any)."""
    if actor.key_id is None and not actor.is_admin:
        raise Forbidden("feedback is given with the key that made the requests")
    value = _value(ctx, report)
    kind, subject = report.subject
    await ctx.store.flush()
    what = f"request '{subject}'" if kind == "request" else f"request with x-interlock-run-id '{subject}'"
    if actor.is_admin:
        owner = await ctx.store.usage_exists(kind, subject)
        if owner is None:
            raise NotFound(f"there is no {what} in the ledger", code=f"{kind}_not_found")
    else:
        owner = actor.key_id or ""
        if not await ctx.store.has_usage(owner, kind, subject):
            raise NotFound(f"this key has no {what} in the ledger", code=f"{kind}_not_found")
    record = FeedbackRecord(
        kind,
        subject,
        owner,
        report.metric,
        value,
        report.comment or "",
        report.demonstration or "",
        time.time(),
        actor.name,
    )
    record = dataclasses.replace(record, id=await ctx.store.insert_feedback(record))
    await audit_action(
        ctx,
        actor,
        "feedback.record",
        subject,
        kind=kind,
        metric=report.metric,
        value=value,
        demonstration=bool(report.demonstration),
    )
    return record


class CaptureQuery(BaseModel):
    """What to list of the captures."""

    model_config = ConfigDict(extra="forbid")

    since: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    key_id: str | None = None
    alias: str | None = None
    limit: int = Field(default=50, ge=1, le=10_000)


async def list_captures(ctx: AdminContext, actor: Principal, query: CaptureQuery) -> list[CaptureRecord]:
    """The newest captures, newest first (admins; read)."""
    require_admin(actor, write=False)
    return await ctx.store.list_captures(since=query.since, key_id=query.key_id, alias=query.alias, limit=query.limit)


class CaptureErase(BaseModel):
    """Whose captures to erase: exactly one of a request id, a key id or a subject."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = ""
    key_id: str = ""
    subject: str = ""

    @model_validator(mode="after")
    def _one(self) -> CaptureErase:
        if sum(bool(x) for x in (self.request_id, self.key_id, self.subject)) != 1:
            raise ValueError("give exactly one of request_id, key_id and subject")
        return self


async def erase_captures(ctx: AdminContext, actor: Principal, erase: CaptureErase) -> Erased:
    """Delete captures (with their feedback and dataset rows) of a request, key or subject; audited."""
    require_admin(actor)
    done = await ctx.store.erase_captures(request_id=erase.request_id, key_id=erase.key_id, subject=erase.subject)
    by = "request_id" if erase.request_id else "key_id" if erase.key_id else "subject"
    # the subject is personal data: the audit holds its hash (to match a later request to this one), not it
    target = erase.request_id or erase.key_id or "subject:" + hashlib.sha256(erase.subject.encode()).hexdigest()[:16]
    await audit_action(
        ctx,
        actor,
        "captures.erase",
        target,
        by=by,
        captures=done.captures,
        feedback=done.feedback,
        dataset_rows=done.dataset_rows,
    )
    return done
