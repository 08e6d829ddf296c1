"""`interlock router`: train a learned cost/quality router, evaluate it, and score prompts with it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from interlock.cli.captures import parse_since
from interlock.cli.options import ConfigOption, settings_or_exit
from interlock.cli.services import call
from interlock.flywheel.labels import router_labels
from interlock.routing.router.data import DataError, LabelledSet, load_excluded, load_labelled, load_prompts
from interlock.routing.router.features import COMBINED_STATIC, EMBEDDERS, embed_conversations, load_embedder
from interlock.routing.router.metrics import SHARES, Summary, bootstrap, random_summary, routing_curve
from interlock.routing.router.model import LearnedRouter, RouterFileError, sidecar_path
from interlock.routing.router.train import STATS_WEIGHT, train_router

app = typer.Typer(help="The learned cost/quality router.", no_args_is_help=True, add_completion=False)

Inputs = Annotated[
    list[Path],
    typer.Option(
        "--input",
        "-i",
        help="Labelled JSONL ('prompt' or 'messages'; 'scores' or 'model'+'score') or RouteLLM CSV (repeatable)",
    ),
]
Exclude = Annotated[Path | None, typer.Option(help="JSONL of prompts to leave out (e.g. contaminated_prompts.jsonl)")]


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[red]{message}[/red]", highlight=False)
    return typer.Exit(2)


def _load(inputs: list[Path], exclude: Path | None) -> LabelledSet:
    try:
        return load_labelled(inputs, load_excluded(exclude) if exclude else ())
    except (OSError, DataError, json.JSONDecodeError) as exc:
        raise _fail(str(exc)) from None


@app.command()
def train(
    inputs: Inputs,
    output: Annotated[Path, typer.Option("--output", "-o", help="Router file to write (JSON)")],
    cheap: Annotated[str | None, typer.Option(help="The cheap model (needed with more than two)")] = None,
    strong: Annotated[str | None, typer.Option(help="The strong model (needed with more than two)")] = None,
    exclude: Exclude = None,
    max_train: Annotated[int | None, typer.Option(help="Train on a random sample of at most N prompts")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample and the cross-validation folds")] = 0,
    embedder: Annotated[str, typer.Option(help=f"Prompt features: {', '.join(EMBEDDERS)}")] = COMBINED_STATIC,
    max_tokens: Annotated[int, typer.Option(help="The router reads the last N tokens of a prompt")] = 256,
    stats: Annotated[
        bool, typer.Option(help="Add prompt statistics (length, digits, options...) to the features (opt-in)")
    ] = False,
) -> None:
    """Learn a router from prompts (or conversations) labelled with each model's score.

    Rows with a "group" field (a source, a tenant, a subject) are cross-validated group by group, so the
    threshold and the calibration describe kinds of prompts the router has not seen.
    """
    data = _load(inputs, exclude)
    if max_train is not None and len(data) > max_train:
        data = data.subset(np.sort(np.random.default_rng(seed).choice(len(data), max_train, replace=False)))
    try:
        encoder = load_embedder(embedder, max_tokens)
        model = train_router(
            data,
            embed_conversations(encoder, data.prompts),
            encoder.name,
            cheap=cheap,
            strong=strong,
            seed=seed,
            max_tokens=max_tokens,
            identity=encoder.identity,
            stats_weight=STATS_WEIGHT if stats else None,
            groups=data.groups,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    model.save(output)
    t = model.training
    print(f"trained on {t['prompts']} prompts; models (cheap → strong): {', '.join(model.models)}")
    for name, apgr in sorted(t["cv"]["apgr"].items(), key=lambda kv: -kv[1]):
        print(f"  cv APGR {apgr:.3f}  {name}{'  ← chosen' if name == t['chosen'] else ''}")
    grouped = " (grouped)" if t["cv"].get("grouped") else ""
    print(
        f"default threshold {model.threshold:.4f} (50% strong calls{grouped}); "
        f"wrote {output} and {sidecar_path(output)}"
    )


def _router(path: Path) -> LearnedRouter:
    try:
        return LearnedRouter.load(path)
    except (OSError, RouterFileError, ValueError) as exc:
        raise _fail(f"{path}: {exc}") from None


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


@app.command("eval")
def evaluate(
    router: Annotated[Path, typer.Option(help="Router file")],
    inputs: Inputs,
    exclude: Exclude = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% intervals")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """PGR curve, APGR and CPT of a router on labelled prompts, against random and single-model baselines."""
    r = _router(router)
    data = _load(inputs, exclude)
    missing = [m for m in (r.model.cheap, r.model.strong) if m not in data.models]
    if missing:
        raise _fail(f"the data has no scores for {', '.join(missing)}")
    data = data.complete_for([r.model.cheap, r.model.strong])
    weak, strong = data.scores[:, 0], data.scores[:, 1]
    scores = r.score(data.prompts)
    summary = Summary.of(routing_curve(scores, weak, strong))
    intervals = bootstrap(scores, weak, strong, resamples=resamples)
    rand = random_summary(weak, strong)
    report: dict[str, Any] = {
        "prompts": len(data),
        "cheap": r.model.cheap,
        "strong": r.model.strong,
        "quality": {"cheap": float(weak.mean()), "strong": float(strong.mean())},
        "pgr_curve": {f"{s:.1f}": v for s, v in zip(SHARES, summary.pgr, strict=True)},
        "router": {k: {"value": i.value, "ci95": [i.low, i.high]} for k, i in intervals.items()},
        "random": {"apgr": rand.apgr, "cpt50": rand.cpt50, "cpt80": rand.cpt80, "share95": rand.share95},
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return
    console = Console()
    console.print(
        f"{len(data)} prompts; cheap {r.model.cheap}: quality {weak.mean():.4f}; "
        f"strong {r.model.strong}: quality {strong.mean():.4f}",
        highlight=False,
    )
    curve = Table("strong share", "PGR router", "PGR random", title="PGR curve")
    for s, v in zip(SHARES, summary.pgr, strict=True):
        curve.add_row(_pct(s), f"{v:.3f}", f"{s:.3f}")
    console.print(curve)
    table = Table("metric", "router", "95% CI", "random", title=f"{resamples} bootstrap resamples")
    rows = [("APGR", "apgr", f"{rand.apgr:.3f}"), ("CPT(50%)", "cpt50", _pct(rand.cpt50))]
    rows += [("CPT(80%)", "cpt80", _pct(rand.cpt80)), ("share for 95% quality", "share95", _pct(rand.share95))]
    for label, key, baseline in rows:
        i = intervals[key]
        fmt = (lambda v: f"{v:.3f}") if key == "apgr" else _pct
        table.add_row(label, fmt(i.value), f"{fmt(i.low)} to {fmt(i.high)}", baseline)
    console.print(table)


@app.command()
def score(
    router: Annotated[Path, typer.Option(help="Router file")],
    input_file: Annotated[
        Path, typer.Option("--input", "-i", help="JSONL (strings, 'prompt' or 'messages' objects) or CSV")
    ],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")] = None,
) -> None:
    """Write, per prompt, its routing score and what it means, as JSONL.

    `score`: what routing ranks by; higher means send to the stronger model (the predicted quality of the
    strong model minus the cheap one). `p_cheap_not_good_enough`: the probability that the cheap model
    fails where the strong one succeeds. `gain`: the expected quality the strong model adds (in [-1, 1]).
    Both are isotonic maps of the score fitted on out-of-fold training scores: calibrated on the training
    distribution. `prompt` is the text the router read (for 'messages', the bounded conversation).
    """
    r = _router(router)
    try:
        prompts = load_prompts(input_file)
    except (OSError, KeyError, DataError) as exc:
        raise _fail(f"{input_file}: {exc}") from None
    qualities = r.model.qualities(r.embed(prompts))
    chosen = r.model.choose(qualities)
    raw = qualities[:, -1] - qualities[:, 0]
    probabilities, gains = r.model.probability(raw), r.model.gain(raw)
    lines = (
        json.dumps(
            {
                "prompt": p,
                "score": float(s),
                "p_cheap_not_good_enough": float(pr),
                "gain": float(g),
                "qualities": dict(zip(r.models, map(float, q), strict=True)),
                "model": m,
            }
        )
        for p, s, q, m, pr, g in zip(prompts, raw, qualities, chosen, probabilities, gains, strict=True)
    )
    out = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        for line in lines:
            out.write(line + "\n")
    finally:
        if output:
            out.close()


@app.command()
def labels(
    metric: Annotated[str, typer.Option(help="A declared feedback metric ([[flywheel.metrics]])")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the JSONL rows")],
    alias: Annotated[list[str] | None, typer.Option("--alias", help="Only captures of this alias (repeatable)")] = None,
    since: Annotated[str | None, typer.Option(help="Captures from this time on (epoch, ISO date, 7d)")] = None,
    until: Annotated[str | None, typer.Option(help="Captures before this time")] = None,
    config: ConfigOption = None,
) -> None:
    """Labelled rows for `router train` from captured requests and their feedback (the flywheel's labels)."""
    settings = settings_or_exit(config)
    declared = {m.name: m for m in settings.flywheel.metrics}
    if metric not in declared:
        raise _fail(f"metric '{metric}' is not declared; declared: {', '.join(sorted(declared)) or 'none'}")
    found = call(
        config,
        lambda ctx, actor: router_labels(
            ctx.store, declared[metric], parse_since(since), parse_since(until), tuple(alias or ())
        ),
    )
    with output.open("w", encoding="utf-8") as f:
        for row in found.rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    Console(stderr=True).print(
        f"{len(found.rows)} labelled rows written to {output} ({found.unrated} captures without '{metric}', "
        f"{found.out_of_range} values outside [0, 1]); next: interlock router train --input {output}"
    )
