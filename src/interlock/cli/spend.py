"""`interlock spend`: the ledger as a table by org, team, key, model or day, or as JSON."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from decimal import Decimal
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from interlock import admin
from interlock.admin import SpendQuery
from interlock.cli.options import ConfigOption
from interlock.cli.services import call


def dollars(micros: int) -> str:
    """Micro-dollars as a dollar amount."""
    return f"${Decimal(micros) / 1_000_000:,.6f}"


def spend(
    by: Annotated[
        Literal["org", "team", "key", "model", "day"],
        typer.Option("--by", help="Group by org, team, key, model or day"),
    ] = "model",
    days: Annotated[float | None, typer.Option(help="Only the last N days")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    config: ConfigOption = None,
) -> None:
    """Show spend from the ledger."""
    query = SpendQuery(group=by, since=time.time() - days * 86400 if days else None)
    report = call(config, lambda ctx, actor: admin.spend_report(ctx, actor, query))
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
