"""`interlock datasets create|import|export|list|show`: versioned datasets from captures, for trainers and evals."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from interlock.admin import AdminContext
from interlock.auth.keys import Principal
from interlock.cli.captures import parse_since
from interlock.cli.options import ConfigOption, fail
from interlock.cli.services import call
from interlock.flywheel import datasets as ds
from interlock.store.flywheel_queries import DatasetRecord, DatasetRow

app = typer.Typer(help="Datasets built from captures (or imported): versioned, split, exported.", no_args_is_help=True)


def _saved(saved: ds.Saved) -> None:
    d = saved.dataset
    verb = "Created" if saved.created else "Unchanged: the content is that of"
    Console().print(
        f"{verb} {d.name}@{d.version}: {d.train_rows} train and {d.eval_rows} eval examples "
        f"({saved.considered} considered, {saved.duplicates} repeated prompts dropped); content {d.content_hash[:12]}"
    )


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Dataset name (a new version each time its content changes)")],
    alias: Annotated[
        list[str] | None, typer.Option("--alias", help="Only captures of this model alias (repeatable)")
    ] = None,
    variant: Annotated[str | None, typer.Option(help="Only captures of this variant")] = None,
    since: Annotated[str | None, typer.Option(help="Captures from this time on (epoch, ISO date, 7d)")] = None,
    until: Annotated[str | None, typer.Option(help="Captures before this time")] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="NAME>=VALUE feedback filter (repeatable)")
    ] = None,
    prefer_demonstrations: Annotated[
        bool, typer.Option(help="Answer with the demonstration given as feedback, if any")
    ] = False,
    eval_fraction: Annotated[float, typer.Option(help="Share of prompts held out for evals")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the train/eval split")] = 0,
    config: ConfigOption = None,
) -> None:
    """Build a dataset version from captures: filtered, deduplicated, split."""
    try:
        spec = ds.BuildSpec(
            ds.check_name(name),
            tuple(alias or ()),
            variant,
            parse_since(since),
            parse_since(until),
            tuple(ds.MetricFilter.parse(m) for m in metric or ()),
            prefer_demonstrations,
            eval_fraction,
            seed,
        )
    except ds.DatasetError as exc:
        raise fail(str(exc), 2) from None

    async def work(ctx: AdminContext, actor: Principal) -> ds.Saved:
        try:
            return await ds.build(ctx.store, spec, actor.name)
        except ds.DatasetError as exc:
            raise fail(str(exc)) from None

    _saved(call(config, work))


@app.command("import")
def import_command(
    name: Annotated[str, typer.Argument(help="Dataset name")],
    file: Annotated[
        Path,
        typer.Argument(help='JSONL in OpenAI\'s fine-tuning format ({"messages": [...]})', exists=True, dir_okay=False),
    ],
    eval_fraction: Annotated[float, typer.Option(help="Share of prompts held out for evals")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the train/eval split")] = 0,
    config: ConfigOption = None,
) -> None:
    """Import examples from a JSONL file as a new version."""
    try:
        ds.check_name(name)
        with file.open(encoding="utf-8") as f:
            examples = ds.parse_jsonl(f)
    except ds.DatasetError as exc:
        raise fail(f"{file}: {exc}", 2) from None
    if not 0 <= eval_fraction < 1:
        raise fail("--eval-fraction is a share, from 0 up to (not including) 1", 2)

    async def work(ctx: AdminContext, actor: Principal) -> ds.Saved:
        return await ds.import_examples(
            ctx.store, name, examples, actor.name, eval_fraction=eval_fraction, seed=seed, file=file.name
        )

    _saved(call(config, work))


def _resolve(
    config: Path | None, ref: str, split: Literal["train", "eval", "all"]
) -> tuple[DatasetRecord, list[DatasetRow]]:
    async def work(ctx: AdminContext, actor: Principal) -> tuple[DatasetRecord, list[DatasetRow]]:
        try:
            d = await ds.resolve(ctx.store, ref)
        except ds.DatasetError as exc:
            raise fail(str(exc)) from None
        return d, await ctx.store.dataset_rows(d.name, d.version, None if split == "all" else split)

    return call(config, work)


@app.command("export")
def export(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default: the latest)")],
    fmt: Annotated[
        ds.Format, typer.Option("--format", help="openai (fine-tuning JSONL) or axolotl (chat_template)")
    ] = "openai",
    split: Annotated[Literal["train", "eval", "all"], typer.Option(help="train, eval or all")] = "train",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")] = None,
    config: ConfigOption = None,
) -> None:
    """Export a dataset version as JSONL for a trainer."""
    d, rows = _resolve(config, ref, split)
    out = output.open("w", encoding="utf-8") if output is not None else sys.stdout
    try:
        for line in ds.export_lines(rows, fmt):
            out.write(line + "\n")
    finally:
        if output is not None:
            out.close()
    err = Console(stderr=True)
    err.print(f"{len(rows)} {split} examples of {d.name}@{d.version} in {fmt} format", highlight=False)
    if fmt == "axolotl":
        err.print("axolotl config:\n" + ds.AXOLOTL_CONFIG.format(path=output or "FILE.jsonl"), highlight=False)


@app.command("list")
def list_command(config: ConfigOption = None) -> None:
    """List every dataset version."""

    async def work(ctx: AdminContext, actor: Principal) -> list[DatasetRecord]:
        return await ctx.store.list_datasets()

    table = Table("dataset", "version", "created (UTC)", "train", "eval", "content", "by", title="Datasets")
    for d in call(config, work):
        when = dt.datetime.fromtimestamp(d.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            d.name, str(d.version), when, str(d.train_rows), str(d.eval_rows), d.content_hash[:12], d.created_by
        )
    Console().print(table)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION")],
    limit: Annotated[int, typer.Option(help="Examples to print")] = 5,
    config: ConfigOption = None,
) -> None:
    """Show a dataset version: how it was built and its first examples."""
    d, rows = _resolve(config, ref, "all")
    console = Console()
    console.print(
        f"{d.name}@{d.version}: {d.train_rows} train, {d.eval_rows} eval, content {d.content_hash}", highlight=False
    )
    console.print("built from: " + json.dumps(json.loads(d.source), sort_keys=True), highlight=False)
    for r in rows[:limit]:
        console.print(f"[{r.position}] {r.split}: {r.example[:300]}", highlight=False, markup=False)
