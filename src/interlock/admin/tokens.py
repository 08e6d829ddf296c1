"""Short-lived agent tokens: mint, list, revoke (the format and the check on use: `auth.tokens`, `auth.keys`).

Minted by the admin or by the agent's owner through their own key (`Principal.acts_as_owner`): the issue's
"credentials minted by their owner or an admin". A governance key cannot mint (it creates no credentials) but
may revoke, as may the owner and the admin. A token authenticates as the agent's active key, so it shares
that key's budgets, limits and models, and it never outlives `[oversight] max_token_ttl_s`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from pydantic import BaseModel, Field

from interlock.admin.context import AdminContext, audit_action
from interlock.admin.keys import key_status
from interlock.auth.keys import Principal
from interlock.auth.tokens import TokenClaims, TokenSigner
from interlock.errors import BadRequest, Forbidden, NotFound
from interlock.store.agent_queries import AgentRecord
from interlock.store.approval_queries import TokenRecord


class TokenMint(BaseModel):
    """The body of POST /admin/agents/{id}/tokens."""

    ttl_s: float = Field(default=3600.0, gt=0, allow_inf_nan=False, description="how long the token lives, in seconds")


@dataclass(frozen=True, slots=True)
class MintedToken:
    """A new token's record and the token itself, shown this once."""

    record: TokenRecord
    token: str


def parse_ttl(text: str) -> float:
    """A duration such as `90s`, `15m`, `1h` or `2d` (a bare number is seconds), in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    scale = units.get(value[-1:], 0)
    try:
        return float(value[:-1] if scale else value) * (scale or 1)
    except ValueError:
        raise BadRequest(f"'{text}' is not a duration: use e.g. 900, 15m, 1h or 2d", param="ttl") from None


async def _agent(ctx: AdminContext, agent_id: str) -> AgentRecord:
    await ctx.keys.refresh()
    agent = ctx.keys.agents.agents.get(agent_id)
    if agent is None:
        raise NotFound(f"no agent with id '{agent_id}'", code="agent_not_found")
    return agent


async def mint_token(ctx: AdminContext, actor: Principal, agent_id: str, spec: TokenMint) -> MintedToken:
    """Mint a token for a usable agent (its owner's key or the admin)."""
    agent = await _agent(ctx, agent_id)
    if not (actor.is_admin or actor.acts_as_owner(agent.owner_id)):
        raise Forbidden(
            "agent tokens are minted by the agent's owner (their own key) or the admin", code="owner_required"
        )
    limit = ctx.settings.oversight.max_token_ttl_s
    if spec.ttl_s > limit:
        raise BadRequest(f"ttl_s may be at most {limit:g} seconds ([oversight] max_token_ttl_s)", param="ttl_s")
    now = time.time()
    ctx.keys.agents.check(agent_id, now)  # 403 for a suspended, expired or halted agent, or an inactive owner
    keys = [k for k in await ctx.keys.list() if k.agent_id == agent_id and key_status(k, now) == "active"]
    if not keys:
        raise BadRequest(f"agent '{agent_id}' has no active key for a token to act as", code="agent_key_missing")
    key = keys[-1]
    expires = now + spec.ttl_s if key.expires_at is None else min(now + spec.ttl_s, key.expires_at)
    record = TokenRecord("tok_" + secrets.token_hex(8), agent.id, key.id, agent.owner_id, actor.name, now, expires)
    token = TokenSigner.at(ctx.settings.home).mint(
        TokenClaims(record.id, agent.id, key.id, agent.owner_id, now, expires)
    )
    await ctx.store.insert_token(record)
    await audit_action(ctx, actor, "agent.token_mint", record.id, agent_id=agent.id, key_id=key.id, expires_at=expires)
    return MintedToken(record, token)


async def list_tokens(ctx: AdminContext, actor: Principal, agent_id: str) -> list[TokenRecord]:
    """An agent's tokens, newest first."""
    agent = await _agent(ctx, agent_id)
    if not (actor.is_admin or actor.admin_read or actor.governance or actor.acts_as_owner(agent.owner_id)):
        raise Forbidden("an agent's tokens are shown to its owner, governance and the admin", code="owner_required")
    return await ctx.store.list_tokens(agent_id)


async def revoke_token(ctx: AdminContext, actor: Principal, agent_id: str, token_id: str) -> None:
    """Revoke a token: refused at once here, by other processes from their next key refresh."""
    agent = await _agent(ctx, agent_id)
    if not (actor.is_admin or actor.governance or actor.acts_as_owner(agent.owner_id)):
        raise Forbidden(
            "revoking a token needs the agent's owner, a governance key or the admin", code="owner_required"
        )
    if not any(t.id == token_id for t in await ctx.store.list_tokens(agent_id)):
        raise NotFound(f"agent '{agent_id}' has no token '{token_id}'", code="token_not_found")
    if not await ctx.store.revoke_token(token_id, time.time()):
        raise BadRequest(f"token '{token_id}' was revoked already", code="token_revoked")
    ctx.keys.revoked_token(token_id)
    await audit_action(ctx, actor, "agent.token_revoke", token_id, agent_id=agent_id)
