"""`interlock tune`: fine-tune a LoRA adapter for the embedded SmolLM2 on the CPU, and register it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from interlock.cli.options import ConfigOption, fail, settings_or_exit
from interlock.engines.gguf import default_model_path
from interlock.engines.training.lora import TrainSpec, load_examples, sha256_file
from interlock.flywheel import tuning

_PLAIN_EVERY = 10  # steps between progress lines when stderr is not a terminal


def _dataset_file(config: Path | None, ref: str, folder: Path) -> tuple[Path, tuning.DatasetRef]:
    """The train split of a stored dataset version, exported as OpenAI JSONL into `folder`."""
    from interlock.cli.datasets import _resolve
    from interlock.flywheel import datasets as ds

    record, rows = _resolve(config, ref, "train")
    if not rows:
        raise fail(f"dataset {record.name}@{record.version} has no train examples")
    path = folder / f"{record.name}@{record.version}.train.jsonl"
    path.write_text("".join(line + "\n" for line in ds.export_lines(rows, "openai")), encoding="utf-8")
    return path, tuning.DatasetRef(record.name, record.version, record.content_hash)


class _Report:
    """Progress on stderr: a bar with the loss on a terminal, a line every few steps otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None

    def __call__(self, event: tuning.Event) -> None:
        kind = event.get("event")
        if kind == "start":
            resumed = f", resuming at step {event['resumed_from']}" if event.get("resumed_from") else ""
            self.console.print(
                f"training on {event['examples']} examples: {event['steps']} steps, "
                f"{event['trainable']:,} trainable parameters{resumed}",
                highlight=False,
            )
            if self.console.is_terminal:
                self.progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}"),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=self.console,
                )
                self.progress.start()
                self.task = self.progress.add_task(
                    "steps", total=event["steps"], completed=event["resumed_from"], loss="-"
                )
        elif kind == "step":
            if self.progress is not None:
                self.progress.update(self.task, completed=event["step"], loss=f"{event['loss']:.4f}")
            elif event["step"] % _PLAIN_EVERY == 0 or event["step"] == event["total"]:
                rate = event["tokens"] / event["seconds"] if event["seconds"] else 0.0
                self.console.print(
                    f"step {event['step']}/{event['total']} loss {event['loss']:.4f} ({rate:.0f} tokens/s)",
                    highlight=False,
                )
        elif kind == "reused":
            self.console.print(
                "this recipe was already trained into the output folder: reusing its result", highlight=False
            )
        elif kind in ("done", "error"):
            self.stop()

    def stop(self) -> None:
        """End the bar."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def tune(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the adapter, checkpoints and manifest")],
    data: Annotated[Path | None, typer.Option(help="OpenAI fine-tuning JSONL ({'messages': [...]} per line)")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="A stored dataset, NAME or NAME@VERSION (its train split)")
    ] = None,
    name: Annotated[str, typer.Option(help="Model name in the registry (versions count up)")] = "smollm2-tuned",
    epochs: Annotated[float, typer.Option(help="Passes over the data")] = 2.0,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, warm-up then linear decay)")] = 1e-3,
    rank: Annotated[int, typer.Option(help="LoRA rank")] = 16,
    alpha: Annotated[float, typer.Option(help="LoRA alpha (the update is scaled by alpha/rank)")] = 32.0,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N optimiser steps")] = None,
    layers: Annotated[int, typer.Option(help="Adapt only the top N layers (0: all; fewer train faster)")] = 0,
    batch_size: Annotated[int, typer.Option(help="Examples per step")] = 8,
    max_length: Annotated[int, typer.Option(help="Tokens per example (longer ones are cut)")] = 512,
    seed: Annotated[int, typer.Option(help="Seed of the LoRA initialisation and the data order")] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints (resume point)")] = 25,
    threads: Annotated[int, typer.Option(help="CPU threads (0: all)")] = 0,
    merge: Annotated[bool, typer.Option(help="Also write a merged GGUF (base + adapter, Q8_0 where adapted)")] = False,
    config: ConfigOption = None,
) -> None:
    """Train a LoRA adapter for the embedded SmolLM2 on the CPU; print the config that serves it.

    Interrupt it at any time: run the same command again to resume from the last checkpoint.
    """
    console = Console(stderr=True)
    if (data is None) == (dataset is None):
        raise fail("give --data FILE.jsonl or --dataset NAME[@VERSION], one of them", 2)
    missing = tuning.missing_modules()
    if missing:
        hint = escape(tuning.INSTALL_HINT)
        raise fail(f"fine-tuning needs {', '.join(missing)}, which are not installed: {hint}", 2)
    settings = settings_or_exit(config)
    out = out.expanduser().resolve()
    if dataset is not None:
        out.mkdir(parents=True, exist_ok=True)
        data, ref = _dataset_file(config, dataset, out)
    else:
        assert data is not None
        if not data.is_file():
            raise fail(f"--data {data}: no such file", 2)
        ref = tuning.DatasetRef(None, None, sha256_file(data))
    try:
        load_examples(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise fail(str(exc), 2) from None
    spec = TrainSpec(
        data=str(data.resolve()),
        out=str(out),
        base=str(default_model_path()),
        epochs=epochs,
        lr=lr,
        rank=rank,
        alpha=alpha,
        max_steps=max_steps,
        layers=layers,
        seed=seed,
        batch_size=batch_size,
        max_length=max_length,
        checkpoint_every=checkpoint_every,
        threads=threads,
        merge=merge,
        name=name,
    )
    report = _Report(console)
    try:
        result = tuning.train(spec, report)
    except tuning.TuneError as exc:
        raise fail(escape(str(exc))) from None
    finally:
        report.stop()
    entry = tuning.register(settings.home, spec, result, ref)
    console.print(
        f"{name} version {entry['version']}: {result['steps']} steps, loss {result['first_loss']:.4f} → "
        f"{result['final_loss']:.4f}, {result['train_seconds']:.0f} s ({result['tokens_per_second']} tokens/s)",
        highlight=False,
    )
    typer.echo(tuning.config_snippet(entry))
