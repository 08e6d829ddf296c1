"""`interlock orgs create|list` and `interlock teams create|list`: the hierarchy budgets roll up through."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from interlock import admin
from interlock.admin import OrgCreate, TeamCreate
from interlock.cli.options import ConfigOption, spec
from interlock.cli.services import call

orgs = typer.Typer(help="Create and list organisations.", no_args_is_help=True)
teams = typer.Typer(help="Create and list teams (each in one organisation).", no_args_is_help=True)
Name = Annotated[str, typer.Argument(help="The name (unique: among orgs, or within the org for a team)")]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


@orgs.command("create")
def create_org(name: Name, config: ConfigOption = None) -> None:
    """Create an organisation and print its id."""
    body = spec(OrgCreate, name=name)
    org = call(config, lambda ctx, actor: admin.create_org(ctx, actor, body))
    Console().print(f"Created organisation [bold]{org.id}[/bold] ({org.name}).")


@orgs.command("list")
def list_orgs(config: ConfigOption = None) -> None:
    """List organisations."""
    table = Table("id", "name", "created", title="Organisations")
    for o in call(config, admin.list_orgs):
        table.add_row(o.id, o.name, _when(o.created_at))
    Console().print(table)


@teams.command("create")
def create_team(
    name: Name,
    org: Annotated[str, typer.Option(help="The organisation's id (org_...)")],
    config: ConfigOption = None,
) -> None:
    """Create a team in an organisation and print its id."""
    body = spec(TeamCreate, org_id=org, name=name)
    team = call(config, lambda ctx, actor: admin.create_team(ctx, actor, body))
    Console().print(f"Created team [bold]{team.id}[/bold] ({team.name}) in {team.org_id}.")


@teams.command("list")
def list_teams(config: ConfigOption = None) -> None:
    """List teams."""
    table = Table("id", "org", "name", "created", title="Teams")
    for t in call(config, admin.list_teams):
        table.add_row(t.id, t.org_id, t.name, _when(t.created_at))
    Console().print(table)
