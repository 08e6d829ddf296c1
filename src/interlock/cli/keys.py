"""`interlock keys create|list|revoke`: virtual keys, managed in the store directly.

A running server sees new keys at once and revocations within `store.key_refresh_interval_s`.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from interlock.audit.log import AuditEvent, AuditLog
from interlock.auth.keys import Keys
from interlock.settings import Settings
from interlock.audit.stores import open_audit_store
from interlock.store import Store, open_store

app = typer.Typer(help="Create, list and revoke virtual keys.", no_args_is_help=True)
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file")]


def _keys(config: Path | None) -> tuple[Keys, Store, Settings]:
    from interlock.cli.main import settings_or_exit

    settings = settings_or_exit(config)
    store = open_store(settings)
    store.open_sync()
    # The admin token is irrelevant here: the CLI never authenticates callers.
    return Keys(store, admin_token=""), store, settings


async def _audited(settings: Settings, action: str, target: str, **metadata: str | bool) -> None:
    """Record a key change made from the command line in the audit log."""
    log = AuditLog(open_audit_store(settings), settings.audit_dir())
    await log.open()
    try:
        actor = f"cli:{getpass.getuser()}"
        await log.append(AuditEvent.admin(action, actor_id=None, actor_name=actor, target=target, **metadata))
    finally:
        await log.close()


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
    admin_read: Annotated[
        bool, typer.Option(help="May read the admin API (keys, spend, budgets); not change it")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Create a key and print it (it is shown only once)."""
    keys, store, settings = _keys(config)
    expires = time.time() + expires_in_days * 86400 if expires_in_days else None
    try:
        record, token = asyncio.run(
            keys.create(
                name,
                owner,
                tuple(model or ()),
                expires,
                restricted=restricted,
                cache_ttl_s=cache_ttl,
                role="admin_read" if admin_read else "",
            )
        )
        asyncio.run(_audited(settings, "key.create", record.id, name=name, models=",".join(record.models)))
    finally:
        store.close_sync()
    console = Console()
    console.print(f"Created key [bold]{record.id}[/bold] ({record.name}). Store it now; it is not shown again:")
    typer.echo(token)


@app.command("list")
def list_keys(config: ConfigOption = None) -> None:
    """List keys (never the keys themselves)."""
    keys, store, _ = _keys(config)
    try:
        records = asyncio.run(keys.list())
    finally:
        store.close_sync()
    table = Table(title="Virtual keys")
    for col in ("id", "name", "owner", "prefix", "models", "created", "expires", "status"):
        table.add_column(col)
    now = time.time()
    for k in records:
        status = "revoked" if k.revoked_at else "expired" if k.expires_at and k.expires_at <= now else "active"
        table.add_row(
            k.id,
            k.name,
            k.owner,
            k.prefix + "...",
            ", ".join(k.models) or "all",
            _when(k.created_at),
            _when(k.expires_at),
            status,
        )
    Console().print(table)


@app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...)")], config: ConfigOption = None) -> None:
    """Revoke a key."""
    keys, store, settings = _keys(config)
    try:
        done = asyncio.run(keys.revoke(key_id))
        if done:
            asyncio.run(_audited(settings, "key.revoke", key_id))
    finally:
        store.close_sync()
    if not done:
        Console(stderr=True).print(f"[red]no active key with id {key_id}[/red]")
        raise typer.Exit(1)
    Console().print(f"Revoked {key_id}.")
