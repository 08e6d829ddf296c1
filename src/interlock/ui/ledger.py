"""The ledger explorer: requests filtered in SQL, paged newest first, one request's detail, CSV/JSONL download.

The filters (key, team, model, status, UTC days, and a run or an agent) become one store query
(`store.ledger_queries`): the page counts the matches (up to `COUNT_CAP`: "more than 10,000" beyond, so a
page view never reads a whole large ledger) and lists a keyset page of them; the download
streams every match, a page at a time, in the columns of `interlock spend --export`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime
from urllib.parse import urlencode

import orjson
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from interlock.admin.exports import LEDGER_FIELDS
from interlock.auth.keys import require_admin
from interlock.errors import BadRequest, NotFound
from interlock.store import ledger_queries
from interlock.store.records import UsageRecord
from interlock.ui.web import View, parse, render, viewer

SHOWN = 200  # rows a page lists
COUNT_CAP = 10_000  # matches a page counts; beyond, it says "more than"
PAGE = 1000  # rows a download reads at a time
DAY = 86_400


def _epoch(day: str) -> float:
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()


class LedgerForm(BaseModel):
    """The explorer's filters (the query string); dates are UTC days, inclusive; `before` is the page cursor."""

    key: str | None = Field(default=None, max_length=200)
    team: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=200)
    status: str | None = Field(default=None, pattern=r"^(ok|error|\d{3})$")
    since: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    until: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    run: str | None = Field(default=None, max_length=128)
    agent: str | None = Field(default=None, max_length=200)
    before: str | None = Field(default=None, max_length=300, pattern=r"^\d+(\.\d+)?\|.+$")

    def query(self) -> ledger_queries.LedgerFilter:
        """The store's filter: "admin" is the admin key's rows; days become [start of since, end of until)."""
        status: ledger_queries.StatusClass | int | None = None
        if self.status in ("ok", "error"):
            status = "ok" if self.status == "ok" else "error"
        elif self.status is not None:
            status = int(self.status)
        try:
            since = _epoch(self.since) if self.since else None
            until = _epoch(self.until) + DAY if self.until else None
        except ValueError as exc:
            raise BadRequest(f"not a date: {exc}", param="since" if "since" in str(exc) else "until") from None
        return ledger_queries.LedgerFilter(
            key_id="" if self.key == "admin" else self.key, team_id=self.team, alias=self.model, status=status,
            since=since, until=until, run_id=self.run, agent_id=self.agent,
        )  # fmt: skip

    def cursor(self) -> tuple[float, str] | None:
        """The page cursor: (ts, request id) of the last row of the previous page."""
        if self.before is None:
            return None
        ts, _, request_id = self.before.partition("|")
        return float(ts), request_id

    def params(self, **changes: str | None) -> str:
        """The query string of these filters with `changes` (a value of None drops the field)."""
        fields = {k: v for k, v in {**self.model_dump(), **changes}.items() if v is not None}
        return urlencode(fields)


def _wanted(request: Request) -> LedgerForm:
    return parse(LedgerForm, {k: v for k, v in request.query_params.items() if v and k != "format"})


async def _reader(request: Request) -> View:
    view = await viewer(request)
    require_admin(view.principal, write=False)
    await view.ctx.store.flush()
    return view


async def ledger_page(request: Request) -> Response:
    """GET /ui/ledger?key=&team=&model=&status=&since=&until=&run=&agent=&before=."""
    view = await _reader(request)
    wanted = _wanted(request)
    where = wanted.query()
    store = view.ctx.store
    rows = await store.ledger_search(where, SHOWN, wanted.cursor())
    total = await store.ledger_count(where, COUNT_CAP)
    older = None
    if len(rows) == SHOWN:
        older = wanted.params(before=f"{rows[-1].ts!r}|{rows[-1].request_id}")
    return render(
        request, "ledger.html", view, rows=rows, total=total, count_cap=COUNT_CAP, filters=wanted, older=older,
        newest=wanted.params(before=None) if wanted.before else None, download=wanted.params(before=None),
        models=sorted(view.settings.models),
    )  # fmt: skip


async def ledger_detail(request: Request) -> Response:
    """GET /ui/ledger/{request_id}: one request's row."""
    view = await _reader(request)
    request_id = request.path_params["request_id"]
    row = await view.ctx.store.ledger_row(request_id)
    if row is None:
        raise NotFound(f"no ledger row for request '{request_id}'", code="request_not_found")
    return render(request, "ledger_detail.html", view, row=row, fields=asdict(row))


def _csv_line(values: tuple[object, ...] | list[object]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(["" if v is None else v for v in values])
    return out.getvalue()


async def ledger_export(request: Request) -> Response:
    """GET /ui/ledger/export?format=csv|jsonl&<the explorer's filters>: every matching row, newest first."""
    view = await _reader(request)
    fmt = request.query_params.get("format", "csv")
    if fmt not in ("csv", "jsonl"):
        raise BadRequest("'format' must be csv or jsonl", param="format")
    wanted = _wanted(request)
    where = wanted.query()
    store = view.ctx.store

    async def rows() -> AsyncIterator[UsageRecord]:
        before = wanted.cursor()
        while True:
            page = await store.ledger_search(where, PAGE, before)
            for row in page:
                yield row
            if len(page) < PAGE:
                return
            before = (page[-1].ts, page[-1].request_id)

    async def body() -> AsyncIterator[str]:
        if fmt == "csv":
            yield _csv_line(list(LEDGER_FIELDS))
        async for row in rows():
            yield _csv_line(row.to_row()) if fmt == "csv" else orjson.dumps(asdict(row)).decode() + "\n"

    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    headers = {"content-disposition": f'attachment; filename="interlock-ledger.{fmt}"', "cache-control": "no-store"}
    return StreamingResponse(body(), media_type=media, headers=headers)
