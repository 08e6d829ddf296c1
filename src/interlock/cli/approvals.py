"""`interlock approvals list|show|approve|deny`: decide held tool calls, via the admin services.

The command line acts as the local user, with the admin's rights (see `cli.services`); the decision is
audited with that user as the approver (`cli:<user>`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from interlock.admin import approvals as services
from interlock.admin.approvals import ApprovalDecision, ApprovalQuery, ShownStatus
from interlock.api.approvals import approval_view
from interlock.cli.options import ConfigOption, spec
from interlock.cli.services import call

app = typer.Typer(help="Approve or deny tool calls held for a person's approval.", no_args_is_help=True)
ApprovalId = Annotated[str, typer.Argument(help="The approval request's id (apr_...)")]
Note = Annotated[str, typer.Option(help="Why (audited)")]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_(
    status: Annotated[ShownStatus | None, typer.Option(help="Only requests in this status")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's (agt_...)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    config: ConfigOption = None,
) -> None:
    """Approval requests, newest first."""
    query = spec(ApprovalQuery, status=status, agent_id=agent)
    found = call(config, lambda ctx, actor: services.list_approvals(ctx, actor, query))
    if as_json:
        typer.echo(json.dumps([approval_view(r) for r in found], default=str))
        return
    table = Table("id", "status", "agent", "tool", "why", "run", "created", "expires")
    for r in found:
        table.add_row(
            r.id, services.shown_status(r), r.agent_id, r.tool, r.reason, r.run_id[:16] or "-",
            _when(r.created_at), _when(r.expires_at),
        )  # fmt: skip
    Console().print(table)


@app.command("show")
def show(approval_id: ApprovalId, config: ConfigOption = None) -> None:
    """One request, with the exact arguments it would let through."""
    record = call(config, lambda ctx, actor: services.show_approval(ctx, actor, approval_id))
    Console().print_json(json.dumps(approval_view(record), default=str))


def _decide(approval_id: str, approve: bool, note: str, config: Path | None) -> None:
    body = spec(ApprovalDecision, note=note)
    record = call(config, lambda ctx, actor: services.decide(ctx, actor, approval_id, approve, body))
    typer.echo(f"{record.id} {record.status}: {record.tool} for {record.agent_id}")


@app.command("approve")
def approve(approval_id: ApprovalId, note: Note = "", config: ConfigOption = None) -> None:
    """Approve: the same call, with the same arguments, goes through once."""
    _decide(approval_id, True, note, config)


@app.command("deny")
def deny(approval_id: ApprovalId, note: Note = "", config: ConfigOption = None) -> None:
    """Deny: the call stays refused."""
    _decide(approval_id, False, note, config)
