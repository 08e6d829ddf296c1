"""`interlock agents shadow` and `interlock agents adopt`: find unregistered agents, and register one.

Registered on the `agents` command group (imported by `cli.main` for that).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from interlock.admin import shadow as services
from interlock.admin.agents import AgentCreate
from interlock.agents.policy import ToolPolicy
from interlock.cli.agents import agents
from interlock.cli.options import ConfigOption, spec
from interlock.cli.services import call


@agents.command("shadow")
def shadow(
    since_hours: Annotated[int, typer.Option(min=1, help="Look at this many hours of traffic")] = 7 * 24,
    config: ConfigOption = None,
) -> None:
    """Keys not registered as agents whose traffic looks agentic, with the evidence."""
    found = call(config, lambda ctx, actor: services.report(ctx, actor, since_hours))
    if not found:
        Console().print(f"No key looks like an unregistered agent in the last {since_hours} hours.")
        return
    table = Table("key", "name", "requests", "score", "evidence")
    for s in found:
        a = s.assessment
        table.add_row(s.key.id, s.key.name, str(a.requests), str(a.score), "\n".join(a.evidence))
    Console().print(table)
    Console().print("Register one: interlock agents adopt KEY_ID --owner own_... --description '...'")


@agents.command("adopt")
def adopt(
    key_id: Annotated[str, typer.Argument(help="The key (key_...) whose software is an agent")],
    owner: Annotated[str, typer.Option(help="The owner's id (own_...)")],
    description: Annotated[str, typer.Option(help="What the agent does")],
    name: Annotated[str | None, typer.Option(help="The agent's name (default: the key's id)")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Allowed model (repeatable)")] = None,
    tool: Annotated[list[str] | None, typer.Option("--tool", "-t", help="Allowed tool or glob (repeatable)")] = None,
    policy: Annotated[Path | None, typer.Option(help="A JSON file with the full tool policy")] = None,
    config: ConfigOption = None,
) -> None:
    """Register the software behind a key as an agent; the key keeps working, as the agent's key."""
    rules = ToolPolicy.model_validate_json(policy.read_text()) if policy else ToolPolicy()
    if tool:
        rules = rules.model_copy(update={"allow": [*rules.allow, *tool]})
    body = spec(
        AgentCreate, name=name or key_id.replace("key_", "agent-", 1), owner_id=owner, description=description,
        models=model or [], policy=rules.model_dump(),
    )  # fmt: skip
    agent = call(config, lambda ctx, actor: services.adopt(ctx, actor, key_id, body))
    Console().print(f"Key {key_id} is now the key of agent [bold]{agent.id}[/bold] ({agent.name}).")
