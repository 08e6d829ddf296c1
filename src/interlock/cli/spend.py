"""`interlock spend`: the ledger as a table by org, team, key, model, endpoint or day, or as JSON; `--roi` for outcomes
against the labour they replace; `--export csv|jsonl` for the ledger rows themselves."""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import asdict
from decimal import Decimal
from typing import Annotated, Literal

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from interlock import admin
from interlock.admin import AdminContext, RoiQuery, RoiReport, RoiRow, SpendQuery
from interlock.admin.exports import LEDGER_FIELDS, ledger_rows
from interlock.auth.keys import Principal
from interlock.cli.options import ConfigOption, fail
from interlock.cli.services import call


def dollars(micros: int) -> str:
    """Micro-dollars as a dollar amount."""
    return f"${Decimal(micros) / 1_000_000:,.6f}"


def spend(
    by: Annotated[
        Literal["org", "team", "key", "model", "endpoint", "day", "task_type"],
        typer.Option(
            "--by", help="Group by org, team, key, model, endpoint or day (with --roi: task_type, team or key)"
        ),
    ] = "model",
    endpoint: Annotated[
        str | None,
        typer.Option(help="Only these endpoints, comma-separated (chat, responses, messages, embeddings, mcp, ...)"),
    ] = None,
    days: Annotated[float | None, typer.Option(help="Only the last N days")] = None,
    since: Annotated[float | None, typer.Option(help="Only from this epoch second on")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    roi: Annotated[bool, typer.Option("--roi", help="Outcomes, AI cost per completed outcome, labour and ROI")] = False,
    export: Annotated[
        Literal["csv", "jsonl"] | None, typer.Option(help="Write every ledger row to stdout as CSV or JSON lines")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Show spend from the ledger."""
    start = since if since is not None else (time.time() - days * 86400 if days else None)
    if (export or roi) and endpoint:
        raise fail("--endpoint filters the spend table; it does not apply to --export or --roi")
    if export is not None:
        call(config, lambda ctx, actor: _export(ctx, actor, export, start))
        return
    if roi:
        group = "task_type" if by == "model" else by  # the default --by model reads as "by task type" here
        if group not in ("task_type", "team", "key"):
            raise fail("--roi groups by task_type, team or key")
        query = RoiQuery.model_validate({"group": group, "since": start})
        _print_roi(call(config, lambda ctx, actor: admin.roi_report(ctx, actor, query)), as_json)
        return
    if by == "task_type":
        raise fail("--by task_type needs --roi")
    try:
        spend_query = SpendQuery(group=by, since=start, endpoint=endpoint)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise fail(
            f"--endpoint: {error['ctx']['error']}"
            if error["type"] == "value_error"
            else "--endpoint takes endpoint names separated by commas (at most 200 characters), "
            "for example chat,responses"
        ) from None
    report = call(config, lambda ctx, actor: admin.spend_report(ctx, actor, spend_query))
    rows = report.rows
    if as_json:
        typer.echo(json.dumps({"group": by, "data": [asdict(r) for r in rows], "summary": report.summary}, indent=2))
        return
    table = Table(title=f"Spend by {by}")
    for col in (by, "requests", "errors", "prompt tokens", "completion tokens", "cost"):
        table.add_column(col, justify="left" if col == by else "right")
    for r in rows:
        label = f"{r.group} ({r.extra['name']})" if r.extra.get("name") else r.group
        table.add_row(
            label,
            str(r.requests),
            str(r.errors),
            f"{r.prompt_tokens:,}",
            f"{r.completion_tokens:,}",
            dollars(r.cost_micros),
        )
    table.add_section()
    table.add_row(
        "total",
        str(sum(r.requests for r in rows)),
        str(sum(r.errors for r in rows)),
        f"{sum(r.prompt_tokens for r in rows):,}",
        f"{sum(r.completion_tokens for r in rows):,}",
        dollars(sum(r.cost_micros for r in rows)),
    )
    console = Console()
    console.print(table)
    console.print(report.summary["text"])


async def _export(ctx: AdminContext, actor: Principal, fmt: str, since: float | None) -> int:
    """Stream the ledger rows to stdout; the number written."""
    out, n = sys.stdout, 0
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(LEDGER_FIELDS)
    async for row in ledger_rows(ctx, actor, since):
        if writer is not None:
            writer.writerow(["" if v is None else v for v in row.to_row()])
        else:
            out.write(orjson.dumps(asdict(row)).decode() + "\n")
        n += 1
    out.flush()
    return n


def _print_roi(report: RoiReport, as_json: bool) -> None:
    if as_json:
        data = {"group": report.group, "data": [asdict(r) for r in report.rows], "total": asdict(report.total)}
        typer.echo(json.dumps({**data, "summary": report.summary}, indent=2))
        return
    table = Table(title=f"ROI by {report.group}")
    cols = ("completed", "failed", "AI cost", "per completed", "hours", "labour value", "ROI", "vs reference")
    table.add_column(report.group)
    for col in cols:
        table.add_column(col, justify="right")
    for r in [*report.rows, report.total]:
        if r is report.total:
            table.add_section()
        label = f"{r.group} ({r.name})" if r.name else r.group
        table.add_row(
            label,
            str(r.completed),
            str(r.failed),
            dollars(r.cost_micros),
            "-" if r.cost_per_completed_micros is None else dollars(r.cost_per_completed_micros),
            f"{r.labour_hours:,.2f}",
            f"${Decimal(r.labour_value_micros) / 1_000_000:,.2f}",
            "-" if r.roi is None else f"{r.roi * 100:,.0f}%",
            _versus(r),
        )
    console = Console()
    console.print(table)
    console.print(report.summary["text"], highlight=False)


def _versus(r: RoiRow) -> str:
    """The savings against the reference model, or what the outcome cost more than it."""
    if not r.reference_cost_micros:
        return "-"
    return f"saved {dollars(r.savings_micros)}" if r.savings_micros >= 0 else f"{dollars(-r.savings_micros)} more"
