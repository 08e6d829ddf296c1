"""`interlock status`: one screen on the models and their health, engine load, today's spend against the
budgets, and the audit log's verification.

Health and engine load come from `/readyz` of the gateway at `--url` (default: the configured host and
port); when none answers, the models are listed from the config as "not running". Spend, budgets and the
audit check and the tool calls waiting for an approval read the store directly, like every other command.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from interlock import admin
from interlock.admin import AdminContext, BudgetStatus, SpendQuery
from interlock.audit.chain import VerifyResult
from interlock.audit.log import verify_home
from interlock.audit.stores import open_audit_store
from interlock.auth.keys import Principal
from interlock.cli.options import ConfigOption, settings_or_exit
from interlock.cli.services import call
from interlock.cli.spend import dollars
from interlock.settings import Settings


def readiness(url: str, timeout_s: float = 2.0) -> dict[str, Any] | None:
    """The gateway's /readyz body (ready or not), or None when nothing answers at `url`."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/readyz", timeout=timeout_s) as r:  # noqa: S310 (http only)
            body: dict[str, Any] = json.loads(r.read())
    except urllib.error.HTTPError as exc:  # 503 not ready: still a body
        try:
            body = json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    return body


def _engine(stats: dict[str, Any] | None) -> str:
    if not stats or "slots" not in stats:
        return "-"
    return f"{stats['slots_busy']}/{stats['slots']} slots busy, queue {stats['queue_length']}/{stats['queue_size']}"


def models_table(settings: Settings, ready: dict[str, Any] | None) -> Table:
    """Each configured model with its health and engine load."""
    table = Table(title="Models", title_justify="left", expand=True)
    for col in ("alias", "provider", "mode", "health", "engine"):
        table.add_column(col)
    live = (ready or {}).get("models", {})
    for alias, m in settings.models.items():
        entry = live.get(alias)
        if ready is None or entry is None:
            health = "[dim]not running[/dim]" if ready is None else "[dim]-[/dim]"
        else:
            health = f"[green]{entry['state']}[/green]" if entry.get("ready") else f"[yellow]{entry['state']}[/yellow]"
        provider = m.provider or ", ".join(sorted({d.provider for d in m.deployments})) or "-"
        table.add_row(alias, provider, m.mode, health, _engine(entry.get("engine") if entry else None))
    return table


async def _money(ctx: AdminContext, actor: Principal) -> tuple[int, int, list[BudgetStatus], int]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    report = await admin.spend_report(ctx, actor, SpendQuery(group="model", since=today))
    spent = sum(r.cost_micros for r in report.rows)
    now = time.time()
    pending = sum(a.expires_at > now for a in await ctx.store.list_approvals(status="pending", limit=10_000))
    return spent, sum(r.requests for r in report.rows), await admin.list_budgets(ctx, actor), pending


def pending_line(pending: int) -> str:
    """How many tool calls wait for a person."""
    if not pending:
        return "[dim]Pending approvals: none[/dim]"
    return f"[yellow]Pending approvals: {pending}[/yellow] (interlock approvals list --status pending)"


def budgets_table(spent: int, requests: int, budgets: list[BudgetStatus]) -> Table:
    """Today's spend, then every budget's use of its current period."""
    table = Table(title=f"Spend today: {dollars(spent)} over {requests} requests", title_justify="left", expand=True)
    for col in ("budget", "period", "spent", "limit", "used"):
        table.add_column(col, justify="left" if col in ("budget", "period") else "right")
    for b in budgets:
        limit = b.budget.limit_micros
        share = b.spent_micros / limit if limit else 0.0
        colour = "red" if share >= 1 else "yellow" if share >= 0.8 else "green"
        table.add_row(
            f"{b.budget.scope} {b.budget.scope_id}",
            b.budget.period,
            dollars(b.spent_micros),
            dollars(limit),
            f"[{colour}]{share:.0%}[/{colour}]",
        )
    if not budgets:
        table.add_row("[dim]no budgets set[/dim]", "", "", "", "")
    return table


def audit_line(result: VerifyResult) -> str:
    """The verification result in one line."""
    if result.ok:
        return (
            f"[green]Audit log intact[/green]: {result.entries} entries, {result.checkpoints} signed checkpoints, "
            f"{result.unsigned} after the last"
        )
    return f"[red]Audit log TAMPERED[/red] at entry {result.first_bad_seq}: {result.reason}"


def status(
    url: Annotated[
        str | None, typer.Option(help="The gateway to ask for health (default: configured host:port)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """One screen: models and health, engine load, spend today vs budgets, audit verification."""
    settings = settings_or_exit(config)
    ready = readiness(url or f"http://{settings.server.host}:{settings.server.port}")
    spent, requests, budgets, pending = call(config, _money)
    store = open_audit_store(settings)
    store.open()
    try:
        result = verify_home(store, settings.audit_dir())
    finally:
        store.close()
    state = "not running" if ready is None else ready.get("status", "?")
    head = f"Interlock at {url or f'{settings.server.host}:{settings.server.port}'}: {state}"
    if ready is not None:
        head += f"; store {ready.get('store', '?')}, ledger {ready.get('ledger', '?')}"
    body = Group(
        head,
        models_table(settings, ready),
        budgets_table(spent, requests, budgets),
        audit_line(result),
        pending_line(pending),
    )
    Console().print(Panel(body, title=f"interlock status · {time.strftime('%Y-%m-%d %H:%M:%S')}"), highlight=False)
    if not result.ok:
        raise typer.Exit(1)
