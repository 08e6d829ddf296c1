"""Variants and rollouts: list them with their numbers, set weights at run time, promote or roll back by hand.

Weights set here are stored (`variant_weights`) and win over the config's until reset; every replica picks
them up within its refresh interval (this one at once). A manual promotion or rollback of a running canary
is recorded like the controller's (`flywheel.rollout`), so the controller leaves it alone afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from interlock.admin.context import AdminContext, audit_action
from interlock.auth.keys import Principal, require_admin
from interlock.errors import BadRequest, NotFound
from interlock.flywheel.rollout import fingerprint, weights_after
from interlock.routing.deployments import ModelRoute
from interlock.store.variant_queries import RolloutRecord, RolloutState, VariantStats


class WeightsSet(BaseModel):
    """The body of PUT /admin/variants/{alias}: a weight per variant name (0: none of the traffic)."""

    weights: dict[str, float] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class VariantsView:
    """One alias with variants: each variant, its weight in force, and its canary with the numbers so far."""

    alias: str
    variants: list[dict[str, Any]]
    rollout: RolloutRecord | None
    stats: dict[str, VariantStats]


Routes = Callable[[], dict[str, ModelRoute]]


def _route(routes: Routes, alias: str) -> ModelRoute:
    route = routes().get(alias)
    if route is None or route.variants is None:
        raise NotFound(f"model '{alias}' has no variants", code="variants_not_found")
    return route


async def list_variants(ctx: AdminContext, actor: Principal, routes: Routes) -> list[VariantsView]:
    """Every alias with variants."""
    require_admin(actor, write=False)
    rollouts = {(r.alias, r.fingerprint): r for r in await ctx.store.list_rollouts()}
    out = []
    for alias, route in sorted(routes().items()):
        if route.variants is None:
            continue
        weights = route.variants.weights()
        variants = [
            {"name": v.name, "model": v.model, "weight": weights.get(v.name, 0.0), "config_weight": v.weight,
             "shadow": v.shadow, "shadow_share": v.shadow_share if v.shadow else None}
            for v in route.variants.variants
        ]  # fmt: skip
        rule = route.model.rollout
        record = rollouts.get((alias, fingerprint(alias, rule))) if rule is not None else None
        stats = (
            await ctx.store.variant_stats(alias, record.started_at, rule.metric)
            if record is not None and rule is not None
            else {}
        )
        out.append(VariantsView(alias, variants, record, stats))
    return out


async def set_weights(ctx: AdminContext, actor: Principal, routes: Routes, alias: str, spec: WeightsSet) -> None:
    """Set run-time weights for some variants of `alias` (the others keep theirs)."""
    require_admin(actor)
    route = _route(routes, alias)
    assert route.variants is not None
    serving = {v.name for v in route.variants.variants if not v.shadow}
    unknown = sorted(set(spec.weights) - serving)
    if unknown:
        shown = [name[:64] for name in unknown[:5]] + (["..."] if len(unknown) > 5 else [])
        raise BadRequest(
            f"not serving variants of '{alias}': {', '.join(shown)}; "
            f"its serving variants: {', '.join(sorted(serving))}",
            param="weights",
        )
    if any(w < 0 or w != w or w == float("inf") for w in spec.weights.values()):
        raise BadRequest("weights must be finite numbers of 0 or more", param="weights")
    after = {**route.variants.weights(), **spec.weights}
    if sum(after.values()) <= 0:
        raise BadRequest("at least one serving variant needs a weight above 0", param="weights")
    await ctx.store.set_variant_weights(alias, dict(spec.weights), time.time(), actor.name)
    route.variants.set_overrides({**route.variants.overrides, **spec.weights})
    await audit_action(
        ctx, actor, "variant.weights", alias, weights=",".join(f"{k}={v:g}" for k, v in sorted(spec.weights.items()))
    )


async def reset_weights(ctx: AdminContext, actor: Principal, routes: Routes, alias: str) -> int:
    """Drop `alias`'s run-time weights: the config's apply again."""
    require_admin(actor)
    route = _route(routes, alias)
    assert route.variants is not None
    n = await ctx.store.clear_variant_weights(alias)
    route.variants.set_overrides({})
    await audit_action(ctx, actor, "variant.reset", alias)
    return n


async def decide(ctx: AdminContext, actor: Principal, routes: Routes, alias: str, state: RolloutState) -> RolloutRecord:
    """Promote or roll back `alias`'s canary by hand (recorded like the controller's decision)."""
    require_admin(actor)
    route = _route(routes, alias)
    rule = route.model.rollout
    if rule is None:
        raise BadRequest(f"model '{alias}' has no rollout configured", code="rollout_not_found")
    now, fp = time.time(), fingerprint(alias, rule)
    record = await ctx.store.start_rollout(RolloutRecord(alias, fp, rule.canary, rule.baseline, "running", "", now))
    if record.state != "running":
        raise BadRequest(
            f"the canary of '{alias}' was {record.state.replace('_', ' ')} already", code="rollout_decided"
        )
    reason = f"by {actor.name}"
    if not await ctx.store.decide_rollout(alias, fp, state, reason, now):
        raise BadRequest(f"the canary of '{alias}' was decided meanwhile", code="rollout_decided")
    weights = weights_after(route, rule, state)
    await ctx.store.set_variant_weights(alias, weights, now, actor.name)
    assert route.variants is not None
    route.variants.set_overrides({**route.variants.overrides, **weights})
    await audit_action(ctx, actor, f"variant.{state}", f"{alias}:{rule.canary}", baseline=rule.baseline, reason=reason)
    return RolloutRecord(alias, fp, rule.canary, rule.baseline, state, reason, record.started_at, now)
