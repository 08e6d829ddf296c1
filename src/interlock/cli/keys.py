"""`interlock keys create|list|revoke|suspend|resume`: virtual keys, through the admin services."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from interlock import admin
from interlock.admin import KeyCreate, KeySuspend
from interlock.api.admin import key_view
from interlock.cli.options import ConfigOption, spec
from interlock.cli.services import call
from interlock.store.records import KeyRecord

app = typer.Typer(help="Create, list, revoke and suspend virtual keys.", no_args_is_help=True)
KeyId = Annotated[str, typer.Argument(help="The key's id (key_...)")]


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M") if ts else "-"


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="A name for the key, such as the app using it")],
    owner: Annotated[str, typer.Option(help="Who is responsible for the key")] = "",
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Allowed model alias or tag:<tag> (repeatable; default all)"),
    ] = None,
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after this many days")] = None,
    restricted: Annotated[bool, typer.Option(help="Data residency: only local/sovereign deployments")] = False,
    cache_ttl: Annotated[int, typer.Option(help="Cache identical requests for this many seconds (0 = off)")] = 0,
    team: Annotated[str | None, typer.Option(help="The team the key belongs to (team_...; budgets roll up)")] = None,
    admin_read: Annotated[
        bool, typer.Option(help="May read the admin API (keys, spend, budgets); not change it")
    ] = False,
    owner_id: Annotated[
        str | None, typer.Option(help="A person's own key (own_...): approves their agents' calls, mints tokens")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a key and print it (it is shown only once)."""
    body = spec(
        KeyCreate,
        name=name,
        owner=owner,
        models=model or [],
        expires_in_days=expires_in_days,
        restricted=restricted,
        cache_ttl_s=cache_ttl,
        team_id=team,
        role="admin_read" if admin_read else "",
        owner_id=owner_id,
    )
    created = call(config, lambda ctx, actor: admin.create_key(ctx, actor, body))
    Console().print(
        f"Created key [bold]{created.record.id}[/bold] ({created.record.name}). Store it now; it is not shown again:"
    )
    typer.echo(created.token)


COLUMNS = ("id", "name", "owner", "team", "prefix", "models", "created", "expires", "status")


def _row(k: KeyRecord) -> tuple[str, ...]:
    return (
        k.id,
        k.name,
        k.owner or "-",
        k.team_id or "-",
        k.prefix + "...",
        ",".join(k.models) or "all",
        _when(k.created_at),
        _when(k.expires_at),
        admin.key_status(k),
    )


@app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Print the keys as GET /admin/keys returns them")] = False,
    config: ConfigOption = None,
) -> None:
    """List keys (never the keys themselves), with their status: active, revoked, expired or suspended."""
    records = call(config, admin.list_keys)
    if as_json:
        typer.echo(json.dumps({"object": "list", "data": [key_view(k) for k in records]}, indent=2))
        return
    rows = [_row(k) for k in records]
    console = Console()
    if not console.is_terminal:
        # piped: one tab-separated line per key, nothing cut to fit a width
        for line in (COLUMNS, *rows):
            typer.echo("\t".join(" ".join(cell.split()) for cell in line))  # a name's tab would shift columns
        return
    table = Table(title="Virtual keys")
    # ids are what people copy: never truncated, whatever the terminal's width
    table.add_column("id", no_wrap=True, min_width=max((len(r[0]) for r in rows), default=2))
    for col in COLUMNS[1:]:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@app.command()
def revoke(key_id: KeyId, config: ConfigOption = None) -> None:
    """Revoke a key."""
    call(config, lambda ctx, actor: admin.revoke_key(ctx, actor, key_id))
    Console().print(f"Revoked {key_id}.")


@app.command()
def suspend(
    key_id: KeyId,
    reason: Annotated[str, typer.Option(help="Why (shown to the key's callers)")] = "",
    config: ConfigOption = None,
) -> None:
    """Suspend a key until it is resumed."""
    body = spec(KeySuspend, reason=reason)
    call(config, lambda ctx, actor: admin.suspend_key(ctx, actor, key_id, body))
    Console().print(f"Suspended {key_id}.")


@app.command()
def resume(key_id: KeyId, config: ConfigOption = None) -> None:
    """Lift a key's suspension."""
    call(config, lambda ctx, actor: admin.resume_key(ctx, actor, key_id))
    Console().print(f"Resumed {key_id}.")
