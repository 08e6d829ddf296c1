"""`interlock variants list|set|reset|promote|rollback`: variant weights and canaries, via the admin services.

The command writes the store; a running gateway applies new weights within `store.key_refresh_interval_s`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console

from interlock.admin import AdminContext
from interlock.admin import variants as services
from interlock.admin.variants import WeightsSet
from interlock.api.variants import view
from interlock.auth.keys import Principal
from interlock.cli.options import ConfigOption, fail, spec
from interlock.cli.services import call
from interlock.routing.deployments import ModelRoute
from interlock.routing.variants import VariantSet
from interlock.store.variant_queries import RolloutRecord, RolloutState

app = typer.Typer(help="Variants of a model alias: weights, canaries, promotion and rollback.", no_args_is_help=True)
Alias = Annotated[str, typer.Argument(help="The alias with variants")]


async def _routes(ctx: AdminContext) -> services.Routes:
    """The variant aliases of the config, with the weights the store holds (no provider is made)."""
    stored: dict[str, dict[str, float]] = {}
    for w in await ctx.store.variant_weights():
        stored.setdefault(w.alias, {})[w.variant] = w.weight
    routes = {}
    for alias, model in ctx.settings.models.items():
        if model.variants:
            variants = VariantSet(alias, list(model.variants))
            variants.set_overrides(stored.get(alias, {}))
            routes[alias] = ModelRoute(alias, model, [], [], variants=variants)
    return lambda: routes


def _print(data: object) -> None:
    Console().print_json(json.dumps(data, default=str))


@app.command("list")
def list_(config: ConfigOption = None) -> None:
    """Every alias with variants: weights in force, the canary and its numbers."""

    async def run(ctx: AdminContext, actor: Principal) -> list[services.VariantsView]:
        return await services.list_variants(ctx, actor, await _routes(ctx))

    _print([view(v) for v in call(config, run)])


@app.command("set")
def set_(
    alias: Alias,
    weight: Annotated[list[str], typer.Argument(help="NAME=WEIGHT, for each variant to change")],
    config: ConfigOption = None,
) -> None:
    """Set run-time weights (they win over the config's until `interlock variants reset`)."""
    weights: dict[str, float] = {}
    for item in weight:
        name, sep, value = item.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            raise fail(f"'{item}' is not NAME=WEIGHT (for example base=90)") from None
        if not sep or not name:
            raise fail(f"'{item}' is not NAME=WEIGHT (for example base=90)")
    body = spec(WeightsSet, weights=weights)

    async def run(ctx: AdminContext, actor: Principal) -> None:
        await services.set_weights(ctx, actor, await _routes(ctx), alias, body)

    call(config, run)
    Console().print(f"Weights of {alias} set: {', '.join(f'{k}={v:g}' for k, v in weights.items())}")


@app.command("reset")
def reset(alias: Alias, config: ConfigOption = None) -> None:
    """Drop the run-time weights: the config's apply again."""

    async def run(ctx: AdminContext, actor: Principal) -> int:
        return await services.reset_weights(ctx, actor, await _routes(ctx), alias)

    call(config, run)
    Console().print(f"Weights of {alias} are the config's again.")


def _decide(alias: str, state: RolloutState, config: ConfigOption) -> None:
    async def run(ctx: AdminContext, actor: Principal) -> RolloutRecord:
        return await services.decide(ctx, actor, await _routes(ctx), alias, state)

    _print(asdict(call(config, run)))


@app.command("promote")
def promote(alias: Alias, config: ConfigOption = None) -> None:
    """Promote the alias's canary now: it takes the baseline's share."""
    _decide(alias, "promoted", config)


@app.command("rollback")
def rollback(alias: Alias, config: ConfigOption = None) -> None:
    """Roll the alias's canary back now: it gets no traffic."""
    _decide(alias, "rolled_back", config)
