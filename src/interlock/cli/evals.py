"""`interlock eval DATASET --model A [--model B] --check ...` and `interlock evals list|show`.

The eval's requests go to a running gateway (`--base-url`, authenticated with `--key`), so they are routed,
budgeted and priced like any other request, and their cost is in the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from interlock.admin import AdminContext
from interlock.auth.keys import Principal
from interlock.cli.options import ConfigOption, fail, settings_or_exit
from interlock.cli.progress import progress_bar
from interlock.cli.services import call
from interlock.flywheel import datasets as ds
from interlock.flywheel import evals as ev
from interlock.flywheel.checks import CheckError, parse_check
from interlock.flywheel.stats import Interval
from interlock.store.flywheel_queries import EvalRecord, EvalResult

app = typer.Typer(help="Eval runs: list them, show one.", no_args_is_help=True)


def _key(explicit: str | None, home: Path, admin: str | None) -> str:
    if explicit:
        return explicit
    if admin:
        return admin
    path = home / "admin_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    raise fail("give --key (or set INTERLOCK_API_KEY): the eval calls the gateway's API with it", 2)


def _cell(stats: dict[str, Any]) -> str:
    return Interval(stats["mean"], stats["low"], stats["high"], stats["n"]).show()


def print_summary(record: EvalRecord) -> None:
    """The eval's table: one row per check, one column per model (and the difference of two)."""
    summary = json.loads(record.summary)
    models: list[str] = json.loads(record.models)
    checks: list[str] = json.loads(record.checks)
    two = len(models) == 2
    columns = [*models, *([f"{models[1]} - {models[0]}"] if two else [])]
    console = Console()
    heading = f"{record.id}: {record.dataset}@{record.version}, {record.items} eval examples (mean [95% CI])"
    console.print(heading, highlight=False)
    table = Table("check", *columns)
    for c in checks:
        row = [_cell(summary["models"][m]["checks"][c]) for m in models]
        if two:
            d = summary["difference"][c]
            row.append(f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]")
        table.add_row(c, *row)
    table.add_row("errors", *[str(summary["models"][m]["errors"]) for m in models], *([""] if two else []))
    p50 = [summary["models"][m]["latency_ms_p50"] for m in models]
    table.add_row("latency p50 ms", *[f"{v:.0f}" if v is not None else "-" for v in p50], *([""] if two else []))
    console.print(table)


def eval_command(
    dataset: Annotated[str, typer.Argument(help="NAME or NAME@VERSION: its eval split is run")],
    model: Annotated[list[str], typer.Option("--model", help="A model alias (twice: side by side)")],
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check", help="exact, contains, regex:P, json, json_schema:FILE, fields:a,b, tool_call (repeatable)"
        ),
    ] = None,
    judge: Annotated[
        str | None, typer.Option(help="A model alias that grades each answer against the reference")
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="The gateway (default: the config's server address)")] = None,
    key: Annotated[
        str | None, typer.Option(envvar="INTERLOCK_API_KEY", help="API key for the gateway (default: the admin key)")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Requests in flight at most")] = 4,
    max_tokens: Annotated[int | None, typer.Option(min=1, help="max_tokens of each request")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap")] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds per request")] = 120.0,
    config: ConfigOption = None,
) -> None:
    """Run a dataset's eval split through one or two models, with deterministic checks and a judge."""
    settings = settings_or_exit(config)
    try:
        checks = tuple(parse_check(c) for c in check or ())
    except CheckError as exc:
        raise fail(str(exc), 2) from None
    url = (base_url or f"http://{settings.server.host}:{settings.server.port}").rstrip("/").removesuffix("/v1")
    token = _key(key, settings.home, settings.admin_key.get_secret_value() if settings.admin_key else None)

    async def work(ctx: AdminContext, actor: Principal) -> EvalRecord:
        try:
            d = await ds.resolve(ctx.store, dataset)
        except ds.DatasetError as exc:
            raise fail(str(exc)) from None
        plan = ev.EvalPlan(d, tuple(model), checks, judge, concurrency, max_tokens, seed)
        total = d.eval_rows * len(model)
        limits = httpx.Limits(max_connections=concurrency * 2)
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, limits=limits) as client:
            with progress_bar(f"eval {d.name}@{d.version}", total) as advance:
                try:
                    record, _ = await ev.run(ctx.store, plan, client, actor.name, advance)
                except ev.EvalError as exc:
                    raise fail(str(exc)) from None
        return record

    print_summary(call(config, work))


@app.command("list")
def list_command(config: ConfigOption = None) -> None:
    """List the eval runs."""

    async def work(ctx: AdminContext, actor: Principal) -> list[EvalRecord]:
        return await ctx.store.list_evals()

    table = Table(title="Evals")
    table.add_column("eval", no_wrap=True)
    for name in ("created (UTC)", "dataset", "models", "checks", "items"):
        table.add_column(name)
    for e in call(config, work):
        when = dt.datetime.fromtimestamp(e.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            e.id,
            when,
            f"{e.dataset}@{e.version}",
            ", ".join(json.loads(e.models)),
            ", ".join(json.loads(e.checks)),
            str(e.items),
        )
    Console().print(table)


@app.command("show")
def show(
    eval_id: Annotated[str, typer.Argument(help="An eval id (from `interlock evals list`)")],
    answers: Annotated[bool, typer.Option(help="Also print each answer with its scores")] = False,
    config: ConfigOption = None,
) -> None:
    """Show one eval run's summary (and its answers)."""

    async def work(ctx: AdminContext, actor: Principal) -> tuple[EvalRecord, list[EvalResult]]:
        found = [e for e in await ctx.store.list_evals() if e.id == eval_id]
        if not found:
            raise fail(f"no eval {eval_id!r}; see `interlock evals list`")
        return found[0], await ctx.store.eval_results(eval_id)

    record, results = call(config, work)
    print_summary(record)
    if answers:
        console = Console()
        for r in results:
            console.print(
                f"{r.model} [{r.position}] {r.scores} {r.error or r.answer[:200]}", markup=False, highlight=False
            )
