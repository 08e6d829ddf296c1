"""`interlock agents …`, `interlock owners …`, `interlock halt …` and `interlock resume …`, via the admin services.

The command line acts as the local user, who can open the store and so holds every role; `halt` and
`resume` act with the governance role (the admin API's admin key cannot lift a halt; see `admin.agents`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from interlock.admin import agents as services
from interlock.admin import tokens
from interlock.admin.agents import AgentCreate, HaltSet, OwnerCreate
from interlock.agents.policy import ToolPolicy
from interlock.agents.runs import RunCaps
from interlock.api.admin import key_view
from interlock.api.agents import agent_view
from interlock.cli.options import ConfigOption, fail, spec
from interlock.cli.services import call
from interlock.errors import GatewayError

agents = typer.Typer(help="Register, list, show, suspend and remove agents.", no_args_is_help=True)
owners = typer.Typer(help="The people who answer for agents.", no_args_is_help=True)
halt = typer.Typer(help="The kill switch: halt an agent, an owner's agents, or all.", no_args_is_help=True)
resume = typer.Typer(help="Lift a halt (the governance role).", no_args_is_help=True)
AgentId = Annotated[str, typer.Argument(help="The agent's id (agt_...)")]
OwnerId = Annotated[str, typer.Argument(help="The owner's id (own_...)")]
Reason = Annotated[str, typer.Option(help="Why (audited)")]


def _print(data: object) -> None:
    Console().print_json(json.dumps(data, default=str))


@owners.command("create")
def owner_create(
    name: Annotated[str, typer.Argument(help="The person's name")],
    email: Annotated[str, typer.Argument(help="Their e-mail address")],
    config: ConfigOption = None,
) -> None:
    """Register an owner."""
    body = spec(OwnerCreate, name=name, email=email)
    _print(asdict(call(config, lambda ctx, actor: services.create_owner(ctx, actor, body))))


@owners.command("list")
def owner_list(config: ConfigOption = None) -> None:
    """Every owner."""
    _print([asdict(o) for o in call(config, services.list_owners)])


def _owner_status(owner_id: str, status: Literal["active", "suspended", "removed"], config: Path | None) -> None:
    _print(asdict(call(config, lambda ctx, actor: services.set_owner_status(ctx, actor, owner_id, status))))


@owners.command("suspend")
def owner_suspend(owner_id: OwnerId, config: ConfigOption = None) -> None:
    """Suspend an owner: every agent they own stops."""
    _owner_status(owner_id, "suspended", config)


@owners.command("resume")
def owner_resume(owner_id: OwnerId, config: ConfigOption = None) -> None:
    """Reactivate a suspended owner."""
    _owner_status(owner_id, "active", config)


@owners.command("remove")
def owner_remove(owner_id: OwnerId, config: ConfigOption = None) -> None:
    """Remove an owner for good: every agent they own stops."""
    _owner_status(owner_id, "removed", config)


MaxSteps = Annotated[int | None, typer.Option(help="Per run: at most this many requests")]
MaxSpend = Annotated[float | None, typer.Option(help="Per run: at most this many dollars")]
MaxTokens = Annotated[int | None, typer.Option(help="Per run: at most this many tokens")]
MaxSeconds = Annotated[float | None, typer.Option(help="Per run: at most this long from its first step")]
LoopRepeats = Annotated[int, typer.Option(help="Stop the same tool call this many times in a row (0: off)")]
LoopCycles = Annotated[int, typer.Option(help="Stop a cycle of 2-4 tool calls repeated this often (0: off)")]


def _caps(
    steps: int | None, spend_usd: float | None, tokens: int | None, seconds: float | None, repeats: int, cycles: int
) -> dict[str, object]:
    """The caps options as the body of `caps` (dollars to micro-dollars, exactly)."""
    return {
        "max_steps": steps, "max_tokens": tokens, "max_seconds": seconds,
        "max_spend_micros": None if spend_usd is None else int(Decimal(str(spend_usd)) * 1_000_000),
        "loop_repeats": repeats, "loop_cycles": cycles,
    }  # fmt: skip


@agents.command("create")
def agent_create(
    name: Annotated[str, typer.Argument(help="A unique name, such as payments-bot")],
    owner: Annotated[str, typer.Option(help="The owner's id (own_...)")],
    description: Annotated[str, typer.Option(help="What the agent does")],
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Allowed model (repeatable)")] = None,
    tool: Annotated[list[str] | None, typer.Option("--tool", "-t", help="Allowed tool or glob (repeatable)")] = None,
    policy: Annotated[Path | None, typer.Option(help="A JSON file with the full tool policy")] = None,
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after this many days")] = None,
    max_steps: MaxSteps = None,
    max_spend_usd: MaxSpend = None,
    max_tokens: MaxTokens = None,
    max_seconds: MaxSeconds = None,
    loop_repeats: LoopRepeats = 3,
    loop_cycles: LoopCycles = 2,
    config: ConfigOption = None,
) -> None:
    """Register an agent and print its key (shown only once)."""
    rules = ToolPolicy.model_validate_json(policy.read_text()) if policy else ToolPolicy()
    if tool:
        rules = rules.model_copy(update={"allow": [*rules.allow, *tool]})
    caps = _caps(max_steps, max_spend_usd, max_tokens, max_seconds, loop_repeats, loop_cycles)
    body = spec(
        AgentCreate, name=name, owner_id=owner, description=description, models=model or [],
        policy=rules.model_dump(), expires_in_days=expires_in_days, caps=caps,
    )  # fmt: skip
    created = call(config, lambda ctx, actor: services.create_agent(ctx, actor, body))
    Console().print(f"Created agent [bold]{created.agent.id}[/bold]. Its key, shown only this once:")
    typer.echo(created.token)


@agents.command("caps")
def agent_caps(
    agent_id: AgentId,
    max_steps: MaxSteps = None,
    max_spend_usd: MaxSpend = None,
    max_tokens: MaxTokens = None,
    max_seconds: MaxSeconds = None,
    loop_repeats: LoopRepeats = 3,
    loop_cycles: LoopCycles = 2,
    config: ConfigOption = None,
) -> None:
    """Replace an agent's per-run caps (an option left out is no cap); in force from its next step."""
    caps = spec(RunCaps, **_caps(max_steps, max_spend_usd, max_tokens, max_seconds, loop_repeats, loop_cycles))
    _print(agent_view(call(config, lambda ctx, actor: services.set_caps(ctx, actor, agent_id, caps))))


@agents.command("list")
def agent_list(config: ConfigOption = None) -> None:
    """Every agent."""
    _print([agent_view(a) for a in call(config, services.list_agents)])


@agents.command("show")
def agent_show(agent_id: AgentId, config: ConfigOption = None) -> None:
    """One agent, its policy and its keys."""
    agent, keys = call(config, lambda ctx, actor: services.show_agent(ctx, actor, agent_id))
    _print({**agent_view(agent), "keys": [key_view(k) for k in keys]})


@agents.command("suspend")
def agent_suspend(agent_id: AgentId, config: ConfigOption = None) -> None:
    """Suspend an agent (reversible: `interlock agents resume`)."""
    _print(agent_view(call(config, lambda ctx, actor: services.set_agent_status(ctx, actor, agent_id, "suspended"))))


@agents.command("resume")
def agent_resume(agent_id: AgentId, config: ConfigOption = None) -> None:
    """Reactivate a suspended agent."""
    _print(agent_view(call(config, lambda ctx, actor: services.set_agent_status(ctx, actor, agent_id, "active"))))


@agents.command("remove")
def agent_remove(agent_id: AgentId, config: ConfigOption = None) -> None:
    """Remove an agent for good and revoke its keys."""
    _print(agent_view(call(config, lambda ctx, actor: services.set_agent_status(ctx, actor, agent_id, "removed"))))


@agents.command("token")
def agent_token(
    agent_id: AgentId,
    ttl: Annotated[str, typer.Option(help="How long it lives: 900, 15m, 1h, 2d")] = "1h",
    config: ConfigOption = None,
) -> None:
    """Mint a short-lived signed token for the agent and print it (shown only once)."""
    try:
        seconds = tokens.parse_ttl(ttl)
    except GatewayError as exc:
        raise fail(exc.message, 2) from None
    mint = spec(tokens.TokenMint, ttl_s=seconds)
    minted = call(config, lambda ctx, actor: tokens.mint_token(ctx, actor, agent_id, mint))
    Console(stderr=True).print(f"Token [bold]{minted.record.id}[/bold] for {agent_id}, valid for {ttl}:")
    typer.echo(minted.token)


@agents.command("tokens")
def agent_tokens(agent_id: AgentId, config: ConfigOption = None) -> None:
    """The agent's minted tokens (ids, expiry, revocation; never the tokens)."""
    _print([asdict(t) for t in call(config, lambda ctx, actor: tokens.list_tokens(ctx, actor, agent_id))])


@agents.command("revoke-token")
def agent_revoke_token(
    agent_id: AgentId,
    token_id: Annotated[str, typer.Argument(help="The token's id (tok_...)")],
    config: ConfigOption = None,
) -> None:
    """Revoke one token (a running server refuses it within the key refresh interval)."""
    call(config, lambda ctx, actor: tokens.revoke_token(ctx, actor, agent_id, token_id))
    typer.echo(f"revoked {token_id}")


def _halt(scope: Literal["agent", "owner", "all"], id_: str, reason: str, config: Path | None, lift: bool) -> None:
    body = spec(HaltSet, scope=scope, id=id_, reason=reason)
    if lift:
        call(config, lambda ctx, actor: services.resume(ctx, replace(actor, governance=True), body))
        typer.echo(f"resumed {scope} {id_}".rstrip())
        return
    _print(asdict(call(config, lambda ctx, actor: services.halt(ctx, replace(actor, governance=True), body))))


@halt.command("agent")
def halt_agent(agent_id: AgentId, reason: Reason = "", config: ConfigOption = None) -> None:
    """Halt one agent."""
    _halt("agent", agent_id, reason, config, lift=False)


@halt.command("owner")
def halt_owner(owner_id: OwnerId, reason: Reason = "", config: ConfigOption = None) -> None:
    """Halt every agent of an owner."""
    _halt("owner", owner_id, reason, config, lift=False)


@halt.command("all")
def halt_all(reason: Reason = "", config: ConfigOption = None) -> None:
    """Halt every agent."""
    _halt("all", "", reason, config, lift=False)


@resume.command("agent")
def resume_agent(agent_id: AgentId, config: ConfigOption = None) -> None:
    """Lift the halt on one agent."""
    _halt("agent", agent_id, "", config, lift=True)


@resume.command("owner")
def resume_owner(owner_id: OwnerId, config: ConfigOption = None) -> None:
    """Lift the halt on an owner's agents."""
    _halt("owner", owner_id, "", config, lift=True)


@resume.command("all")
def resume_all(config: ConfigOption = None) -> None:
    """Lift the halt on every agent."""
    _halt("all", "", "", config, lift=True)
