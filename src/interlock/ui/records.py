"""What happened: the overview charts, the ledger explorer and the audit log with its verification.

All reads: each checks that the principal may read the admin API. Spend comes from the admin spend
report; the ledger explorer and the latency percentiles read the newest `SCAN` ledger rows (the store
has no filtered query yet; item 6 of issue 15, exports, is where one would come with an admin service).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from interlock.admin import SpendQuery, spend_report
from interlock.audit.log import AuditEntry, VerifyResult, verify_home
from interlock.audit.stores import open_audit_store
from interlock.auth.keys import require_admin
from interlock.errors import BadRequest, NotFound
from interlock.settings import Settings
from interlock.store.records import UsageRecord
from interlock.ui import charts
from interlock.ui.web import View, parse, render, viewer

SCAN = 10_000  # newest ledger rows the explorer and the percentiles look at
SHOWN = 200  # rows a page lists
AUDIT_SCAN = 5_000


class LedgerFilter(BaseModel):
    """The ledger explorer's filters (the query string); dates are UTC days, inclusive."""

    key: str | None = Field(default=None, max_length=200)
    team: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=200)
    status: str | None = Field(default=None, pattern=r"^(ok|error|\d{3})$")
    since: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    until: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")

    def matches(self, row: UsageRecord) -> bool:
        """Whether `row` passes every filter that is set."""
        day = charts.day_of(row.ts)
        return (
            (self.key is None or row.key_id == self.key or (self.key == "admin" and row.key_id is None))
            and (self.team is None or row.team_id == self.team)
            and (self.model is None or row.alias == self.model)
            and (self.status is None or _status_matches(self.status, row.status))
            and (self.since is None or day >= self.since)
            and (self.until is None or day <= self.until)
        )


def _status_matches(wanted: str, status: int) -> bool:
    if wanted == "ok":
        return status < 400
    if wanted == "error":
        return status >= 400
    return status == int(wanted)


class AuditFilter(BaseModel):
    """The audit page's filters: an action prefix, an actor (name or id), a decision, a first UTC day."""

    action: str | None = Field(default=None, max_length=200)
    actor: str | None = Field(default=None, max_length=200)
    decision: str | None = Field(default=None, pattern=r"^(allow|deny)$")
    since: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")

    def matches(self, e: AuditEntry) -> bool:
        """Whether entry `e` passes every filter that is set."""
        return (
            (self.action is None or e.action.startswith(self.action))
            and (self.actor is None or self.actor in (e.actor_name, e.actor_id))
            and (self.decision is None or e.decision == self.decision)
            and (self.since is None or charts.day_of(e.ts) >= self.since)
        )


@dataclass(frozen=True, slots=True)
class Verification:
    """The audit log's verification, as the page shows it."""

    result: VerifyResult
    at: float


def _query(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if v}


async def _ledger_rows(view: View) -> list[UsageRecord]:
    require_admin(view.principal, write=False)
    await view.ctx.store.flush()
    return await view.ctx.store.usage_rows(SCAN)


async def overview_page(request: Request) -> Response:
    """GET /ui/: the overview; its charts load /ui/api/overview."""
    return render(request, "overview.html", await viewer(request))


async def overview_data(request: Request) -> Response:
    """GET /ui/api/overview?days=N (1-366, default 30): the overview charts' data as JSON."""
    view = await viewer(request)
    raw = request.query_params.get("days", "30")
    if not raw.isdigit() or not 1 <= int(raw) <= 366:
        raise BadRequest("'days' must be a whole number from 1 to 366", param="days")
    since = time.time() - int(raw) * 86400
    by_day = await spend_report(view.ctx, view.principal, SpendQuery(group="day", since=since))
    by_model = await spend_report(view.ctx, view.principal, SpendQuery(group="model", since=since))
    rows = [r for r in await _ledger_rows(view) if r.ts >= since]
    data = charts.overview(by_day.rows, by_model.rows, rows, by_day.summary)
    return JSONResponse({"days": int(raw), **data}, headers={"cache-control": "no-store"})


async def ledger_page(request: Request) -> Response:
    """GET /ui/ledger?key=&team=&model=&status=&since=&until=."""
    view = await viewer(request)
    wanted = parse(LedgerFilter, _query(request))
    found = [r for r in await _ledger_rows(view) if wanted.matches(r)]
    return render(
        request, "ledger.html", view, rows=found[:SHOWN], total=len(found), filters=wanted, scan=SCAN,
        models=sorted(view.settings.models),
    )  # fmt: skip


async def ledger_detail(request: Request) -> Response:
    """GET /ui/ledger/{request_id}: one request's row."""
    view = await viewer(request)
    request_id = request.path_params["request_id"]
    row = next((r for r in await _ledger_rows(view) if r.request_id == request_id), None)
    if row is None:
        raise NotFound(f"no ledger row for request '{request_id}' among the newest {SCAN}", code="request_not_found")
    return render(request, "ledger_detail.html", view, row=row, fields=asdict(row))


async def audit_page(request: Request) -> Response:
    """GET /ui/audit?action=&actor=&decision=&since=."""
    view = await viewer(request)
    require_admin(view.principal, write=False)
    wanted = parse(AuditFilter, _query(request))
    found = [e for e in await view.services.audit.recent(AUDIT_SCAN) if wanted.matches(e)]
    return render(request, "audit.html", view, entries=found[:SHOWN], total=len(found), filters=wanted)


def _verify(settings: Settings) -> VerifyResult:
    """`interlock audit verify`, on a connection of its own (the writer keeps its own)."""
    store = open_audit_store(settings)
    store.open()
    try:
        return verify_home(store, settings.audit_dir())
    finally:
        store.close()


async def audit_verify(request: Request) -> Response:
    """GET /ui/audit/verify: check every entry, checkpoint signature and the head file (a read)."""
    view = await viewer(request)
    require_admin(view.principal, write=False)
    result = await asyncio.to_thread(_verify, view.settings)
    return render(request, "audit_verify.html", view, check=Verification(result, time.time()))
