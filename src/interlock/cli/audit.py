"""`interlock audit verify|list|export`: check the tamper-evident audit log offline (with a progress bar), show
recent entries, and export entries as JSON lines for a SIEM."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from interlock.admin.exports import audit_entries
from interlock.audit.chain import AuditStore
from interlock.audit.log import verify_home
from interlock.audit.stores import open_audit_store
from interlock.cli.options import ConfigOption, settings_or_exit
from interlock.cli.progress import CountedEntries, progress_bar
from interlock.settings import Settings

app = typer.Typer(help="Verify and list the tamper-evident audit log.", no_args_is_help=True)


def _open(config: Path | None) -> tuple[Settings, AuditStore]:
    settings = settings_or_exit(config)
    store = open_audit_store(settings)
    store.open()
    return settings, store


@app.command()
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    head: Annotated[
        Path | None, typer.Option(help="A copy of audit_head.json kept elsewhere (default: the one under home)")
    ] = None,
    fingerprint: Annotated[
        str | None, typer.Option(help="The public key fingerprint to expect (catches a replaced key pair)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Check every entry, checkpoint signature and the head file; exit 1 naming the first bad entry."""
    settings, store = _open(config)
    try:
        with progress_bar("verifying entries", total=store.tail()[0], quiet=as_json) as advance:
            counted = CountedEntries(store, advance)
            result = verify_home(counted, settings.audit_dir(), head_path=head, expect_fingerprint=fingerprint)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(asdict(result), indent=2))
    elif result.ok:
        Console().print(
            f"[green]Audit log intact:[/green] {result.entries} entries, {result.checkpoints} signed checkpoints, "
            f"{result.unsigned} entries after the last checkpoint. Key {result.fingerprint[:16] or '-'}.",
            highlight=False,
        )
    else:
        where = f"entry {result.first_bad_seq}" if result.first_bad_seq is not None else "the log as a whole"
        cp = f" (checkpoint {result.checkpoint_id})" if result.checkpoint_id is not None else ""
        Console().print(f"[red]Audit log TAMPERED at {where}{cp}:[/red] {result.reason}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


@app.command("list")
def list_entries(
    limit: Annotated[int, typer.Option(help="How many of the newest entries")] = 50, config: ConfigOption = None
) -> None:
    """Show the newest entries."""
    _, store = _open(config)
    try:
        entries = store.recent(limit)
    finally:
        store.close()
    table = Table(title="Audit log (newest first)")
    for col in ("seq", "time", "actor", "action", "target", "decision", "reason", "metadata"):
        table.add_column(col, justify="right" if col == "seq" else "left")
    for e in entries:
        when = datetime.fromtimestamp(e.ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
        actor = f"{e.actor_name} ({e.actor_id})" if e.actor_id else e.actor_name
        meta = ", ".join(f"{k}={v}" for k, v in e.metadata_dict().items())
        style = "red" if e.decision == "deny" else None
        table.add_row(str(e.seq), when, actor, e.action, e.target, e.decision, e.reason, meta, style=style)
    Console().print(table)


@app.command("export")
def export(
    since: Annotated[float | None, typer.Option(help="Only entries from this epoch second on")] = None,
    config: ConfigOption = None,
) -> None:
    """Write entries as JSON lines (one per entry, with its hash and the previous entry's) to stdout."""
    _, store = _open(config)
    try:
        for record in audit_entries(store, since):
            sys.stdout.write(orjson.dumps(record).decode() + "\n")
    finally:
        store.close()
    sys.stdout.flush()
