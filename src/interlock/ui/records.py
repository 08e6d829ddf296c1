"""What happened: the overview charts and the audit log with its verification (the ledger: `ui.ledger`).

All reads: each checks that the principal may read the admin API. Spend comes from the admin spend
report; the latency percentiles come from the window's newest `SCAN` ledger rows.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from interlock.admin import SpendQuery, spend_report
from interlock.audit.log import AuditEntry, VerifyResult, verify_home
from interlock.audit.stores import open_audit_store
from interlock.auth.keys import require_admin
from interlock.errors import BadRequest
from interlock.settings import Settings
from interlock.store.ledger_queries import LedgerFilter
from interlock.store.records import UsageRecord
from interlock.ui import charts
from interlock.ui.web import View, parse, render, viewer

SCAN = 10_000  # newest ledger rows of the window the latency percentiles look at
SHOWN = 200  # rows a page lists
AUDIT_SCAN = 5_000


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


async def _latency_rows(view: View, since: float) -> list[UsageRecord]:
    require_admin(view.principal, write=False)
    await view.ctx.store.flush()
    return await view.ctx.store.ledger_search(LedgerFilter(since=since), SCAN)


async def overview_page(request: Request) -> Response:
    """GET /ui/: the overview; its charts load /ui/api/overview."""
    return render(request, "overview.html", await viewer(request))


async def overview_data(request: Request) -> Response:
    """GET /ui/api/overview?days=N (1-366, default 30): the overview charts' data as JSON."""
    view = await viewer(request)
    raw = request.query_params.get("days", "30")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not 1 <= int(raw) <= 366:
        raise BadRequest("'days' must be a whole number from 1 to 366", param="days")
    since = time.time() - int(raw) * 86400
    by_day = await spend_report(view.ctx, view.principal, SpendQuery(group="day", since=since))
    by_model = await spend_report(view.ctx, view.principal, SpendQuery(group="model", since=since))
    rows = await _latency_rows(view, since)
    data = charts.overview(by_day.rows, by_model.rows, rows, by_day.summary)
    return JSONResponse({"days": int(raw), **data}, headers={"cache-control": "no-store"})


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
