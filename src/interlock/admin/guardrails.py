"""Guardrail policies on orgs, teams, keys and model aliases (the config's `[guardrails.policy]` is the default).

A change takes effect at once in this process and on other replicas within `guardrails.refresh_s`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from pydantic import BaseModel, Field

from interlock.admin.context import AdminContext, audit_action
from interlock.admin.limits import check_scope
from interlock.auth.keys import Principal, require_admin
from interlock.errors import NotFound
from interlock.guardrails.policy import PolicyRules, ScopeKind
from interlock.store.guardrail_queries import GuardrailPolicyRecord


class GuardrailRef(BaseModel):
    """Which scoped policy: one scope and one id."""

    scope: ScopeKind
    scope_id: str = Field(min_length=1, max_length=200)


class GuardrailSet(GuardrailRef):
    """The body of PUT /admin/guardrails: a scope and its policy."""

    rules: PolicyRules


@dataclass(frozen=True, slots=True)
class GuardrailPolicy:
    """A scoped policy as the API and CLI show it."""

    scope: str
    scope_id: str
    rules: dict[str, object]
    updated_at: float
    updated_by: str


def _shown(r: GuardrailPolicyRecord) -> GuardrailPolicy:
    return GuardrailPolicy(r.scope, r.scope_id, orjson.loads(r.rules), r.updated_at, r.updated_by)


async def _refresh(ctx: AdminContext) -> None:
    if ctx.guardrails is not None:
        await ctx.guardrails.refresh()


async def set_guardrail_policy(ctx: AdminContext, actor: Principal, spec: GuardrailSet) -> GuardrailPolicy:
    """Create or replace the policy of one scope."""
    require_admin(actor)
    if spec.scope == "agent":
        if spec.scope_id not in {a.id for a in await ctx.store.list_agents()}:
            raise NotFound(f"no agent with id '{spec.scope_id}'", code="agent_not_found", param="scope_id")
    else:
        await check_scope(ctx, spec.scope, spec.scope_id)
    rules = spec.rules.model_dump(exclude_defaults=True)
    record = GuardrailPolicyRecord(spec.scope, spec.scope_id, orjson.dumps(rules).decode(), time.time(), actor.name)
    await ctx.store.upsert_guardrail_policy(record)
    await _refresh(ctx)
    await audit_action(
        ctx,
        actor,
        "guardrail.set",
        f"{spec.scope}:{spec.scope_id}",
        input=",".join(f"{k}={v}" for k, v in sorted(spec.rules.input.items())),
        output=",".join(f"{k}={v}" for k, v in sorted(spec.rules.output.items())),
        custom=",".join(sorted([*spec.rules.patterns, *spec.rules.keywords])),
    )
    return _shown(record)


async def delete_guardrail_policy(ctx: AdminContext, actor: Principal, ref: GuardrailRef) -> None:
    """Remove the policy of one scope (requests there fall back to the wider scopes and the default)."""
    require_admin(actor)
    if not await ctx.store.delete_guardrail_policy(ref.scope, ref.scope_id):
        raise NotFound(f"no guardrail policy on {ref.scope} '{ref.scope_id}'", code="guardrail_policy_not_found")
    await _refresh(ctx)
    await audit_action(ctx, actor, "guardrail.delete", f"{ref.scope}:{ref.scope_id}")


async def list_guardrail_policies(ctx: AdminContext, actor: Principal) -> list[GuardrailPolicy]:
    """Every scoped policy."""
    require_admin(actor, write=False)
    return [_shown(r) for r in await ctx.store.list_guardrail_policies()]
