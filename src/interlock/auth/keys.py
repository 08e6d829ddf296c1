"""Virtual keys: creation, hashing, and authentication from an in-process cache.

Keys are random 256-bit tokens shown once. Only their SHA-256 is stored; a lookup hashes the
presented token and compares digests in constant time. The cache is refreshed from the store every
`key_refresh_interval_s`, so a revocation made by another process takes effect within that bound;
revocations through this process's admin API take effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from interlock.auth.agents import AgentDirectory
from interlock.auth.tokens import TOKEN_PREFIX, TokenSigner
from interlock.background import Periodic
from interlock.errors import BadRequest, Forbidden, Unauthorized
from interlock.store.agent_queries import AgentStore
from interlock.store.records import KeyRecord, TeamRecord

log = logging.getLogger(__name__)

KEY_PREFIX = "sk-il-"


class KeyStore(AgentStore, Protocol):
    """What key management needs from the store (agents' keys are checked against the agent registry)."""

    async def insert_key(self, key: KeyRecord) -> None: ...
    async def list_keys(self) -> list[KeyRecord]: ...
    async def key_by_hash(self, hash_: str) -> KeyRecord | None: ...
    async def revoke_key(self, key_id: str, at: float) -> bool: ...
    async def list_teams(self) -> list[TeamRecord]: ...
    async def suspend_key(self, key_id: str, at: float | None, reason: str = "") -> bool: ...
    async def revoked_tokens(self, now: float) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a virtual key, or the admin."""

    key_id: str | None
    name: str
    is_admin: bool = False
    admin_read: bool = False  # may read the admin API (keys, spend, budgets, audit), not change it
    models: tuple[str, ...] = ()
    restricted: bool = False  # data residency: local/sovereign deployments only
    cache_ttl_s: int = 0
    team_id: str | None = None
    org_id: str | None = None
    agent_id: str | None = None  # an agent key: the agent, and the person who answers for it
    owner_id: str | None = None  # with agent_id None: a person's own key, acting as that owner (approvals, tokens)
    governance: bool = False  # may halt and resume agents (and nothing else on the admin API)

    def may_use(self, alias: str, tags: list[str]) -> bool:
        """Whether this principal may call model `alias` (entries are aliases or `tag:<tag>`)."""
        if self.is_admin or not self.models:
            return True
        return alias in self.models or any(f"tag:{t}" in self.models for t in tags)

    def acts_as_owner(self, owner_id: str) -> bool:
        """Whether this is `owner_id`'s own key (an agent's key names its owner too, but never acts as them)."""
        return self.agent_id is None and self.owner_id is not None and self.owner_id == owner_id


ADMIN = Principal(key_id=None, name="admin", is_admin=True)


def hash_key(token: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_key_token() -> str:
    """A fresh random key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def load_admin_key(home: Path, explicit: str | None = None) -> str:
    """The configured admin key, or the one in <home>/admin_key, created with mode 0600 on first start."""
    if explicit:
        return explicit
    path = home / "admin_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    home.mkdir(parents=True, exist_ok=True)
    token = KEY_PREFIX + "admin-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    log.info("generated an admin key in %s", path)
    return token


def check_usable(key: KeyRecord, now: float) -> None:
    """Raise 401 if the key is revoked or expired."""
    if key.revoked_at is not None and key.revoked_at <= now:
        raise Unauthorized(f"API key {key.prefix}... was revoked", code="revoked_api_key")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized(f"API key {key.prefix}... has expired", code="expired_api_key")
    if key.suspended_at is not None and key.suspended_at <= now:
        raise Forbidden(
            f"API key {key.prefix}... is suspended ({key.suspended_reason or 'by an admin'}); ask an admin to lift it",
            code="suspended_api_key",
        )


class Keys:
    """Creates keys and authenticates callers against a cache of the key table."""

    def __init__(
        self, store: KeyStore, admin_token: str, refresh_interval: float = 2.0, tokens: TokenSigner | None = None
    ) -> None:
        self._store = store
        self._admin_hash = hash_key(admin_token)
        self._by_hash: dict[str, KeyRecord] = {}
        self._tokens = tokens  # None: agent tokens are not accepted
        self._revoked_tokens: frozenset[str] = frozenset()
        self._team_org: dict[str, str] = {}
        self.agents = AgentDirectory()
        self._refresher = Periodic(
            self.refresh,
            refresh_interval,
            name="interlock-key-refresh",
            failure="key cache refresh failed; keeping the previous cache",
        )

    async def start(self) -> None:
        """Load the cache and keep it fresh."""
        await self._refresher.begin()

    async def close(self) -> None:
        """Stop refreshing."""
        await self._refresher.close()

    async def refresh(self) -> None:
        """Reload every key (and which org each team belongs to) from the store."""
        self._team_org = {t.id: t.org_id for t in await self._store.list_teams()}
        self._by_hash = {k.hash: k for k in await self._store.list_keys()}
        self._revoked_tokens = frozenset(await self._store.revoked_tokens(time.time()))
        await self.agents.load(self._store)

    async def authenticate(self, token: str | None) -> Principal:
        """The principal for a presented token; 401 if missing, unknown, expired or revoked."""
        if not token:
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' (or 'x-api-key: <key>')",
                code="missing_api_key",
            )
        if token.startswith(TOKEN_PREFIX):
            return await self._authenticate_token(token)
        digest = hash_key(token)
        if hmac.compare_digest(digest, self._admin_hash):
            return ADMIN
        key = self._by_hash.get(digest)
        if key is None:
            key = await self._store.key_by_hash(digest)  # created by another process since the refresh
            if key is not None:
                self._by_hash[digest] = key
        if key is None or not hmac.compare_digest(key.hash, digest):
            raise Unauthorized("invalid API key", code="invalid_api_key")
        return await self._principal(key, time.time())

    async def _authenticate_token(self, token: str) -> Principal:
        """The principal of an agent token: its agent's key, while the token is unexpired and not revoked."""
        if self._tokens is None:
            raise Unauthorized("agent tokens are not accepted here", code="invalid_agent_token")
        claims = self._tokens.verify(token)
        now = time.time()
        if claims.expires_at <= now:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(claims.expires_at))
            raise Unauthorized(
                f"agent token {claims.token_id} expired at {when}; mint a new one (interlock agents token AGENT)",
                code="expired_agent_token",
            )
        if claims.token_id in self._revoked_tokens:
            raise Unauthorized(f"agent token {claims.token_id} was revoked", code="revoked_agent_token")
        key = next((k for k in self._by_hash.values() if k.id == claims.key_id), None)
        if key is None:
            await self.refresh()  # a key made by another process since the refresh
            key = next((k for k in self._by_hash.values() if k.id == claims.key_id), None)
        if key is None or key.agent_id != claims.agent_id:
            raise Unauthorized(f"agent token {claims.token_id}: its agent key is gone", code="invalid_agent_token")
        return await self._principal(key, now)

    def revoked_token(self, token_id: str) -> None:
        """Refuse a token in this process at once (the store has it; other processes at their next refresh)."""
        self._revoked_tokens = self._revoked_tokens | {token_id}

    async def _principal(self, key: KeyRecord, now: float) -> Principal:
        check_usable(key, now)
        name, models, agent_id, owner_id = key.name, key.models, None, key.owner_id
        if key.agent_id is not None:
            if key.agent_id not in self.agents.agents:
                await self.refresh()  # an agent registered by another process since the refresh
            who = self.agents.check(key.agent_id, now)
            agent_id, owner_id = who.agent.id, who.owner.id
            # The name is what every audit entry records: it names the agent and its owner.
            name = f"agent:{who.agent.name} ({who.agent.id}; owner {who.owner.id})"
            models = _narrowed(key.models, who.agent.models)
        elif owner_id is not None:  # a person's own key stops with them, like their agents
            if owner_id not in self.agents.owners:
                await self.refresh()
            owner = self.agents.owners.get(owner_id)
            if owner is None or owner.status != "active":
                raise Forbidden(
                    f"the owner of key {key.prefix}... is {'removed' if owner is None else owner.status}",
                    code="owner_inactive",
                )
        return Principal(
            key_id=key.id,
            name=name,
            models=models,
            restricted=key.residency == "restricted",
            cache_ttl_s=key.cache_ttl_s,
            team_id=key.team_id,
            org_id=self._team_org.get(key.team_id) if key.team_id else None,
            admin_read=key.role == "admin_read",
            agent_id=agent_id,
            owner_id=owner_id,
            governance=key.role == "governance",
        )

    async def create(
        self,
        name: str,
        owner: str = "",
        models: tuple[str, ...] = (),
        expires_at: float | None = None,
        *,
        restricted: bool = False,
        cache_ttl_s: int = 0,
        team_id: str | None = None,
        role: str = "",
        agent_id: str | None = None,
        owner_id: str | None = None,
    ) -> tuple[KeyRecord, str]:
        """Create a key; returns the record and the plaintext token (shown once, never stored)."""
        token = new_key_token()
        record = KeyRecord(
            id="key_" + secrets.token_hex(8),
            name=name,
            owner=owner,
            hash=hash_key(token),
            prefix=token[:12],
            models=models,
            created_at=time.time(),
            expires_at=expires_at,
            residency="restricted" if restricted else "",
            cache_ttl_s=cache_ttl_s,
            team_id=team_id,
            role=role,
            agent_id=agent_id,
            owner_id=owner_id,
        )
        if team_id is not None and team_id not in self._team_org:
            await self.refresh()  # a team made by another process since the last refresh
            if team_id not in self._team_org:
                raise BadRequest(f"no team with id '{team_id}'", param="team_id")
        await self._store.insert_key(record)
        self._by_hash[record.hash] = record
        return record, token

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key at once in this process (other processes within the refresh interval)."""
        done = await self._store.revoke_key(key_id, time.time())
        if done:
            await self.refresh()
        return done

    async def suspend(self, key_id: str, reason: str) -> bool:
        """Suspend a key at once in this process (other processes within the refresh interval)."""
        done = await self._store.suspend_key(key_id, time.time(), reason)
        await self.refresh()
        return done

    async def resume(self, key_id: str) -> bool:
        """Lift a suspension."""
        done = await self._store.suspend_key(key_id, None)
        await self.refresh()
        return done

    async def list(self) -> list[KeyRecord]:
        """Every key."""
        return await self._store.list_keys()


def _narrowed(key_models: tuple[str, ...], agent_models: tuple[str, ...]) -> tuple[str, ...]:
    """The models both the key and its agent allow (an empty list allows all)."""
    if not key_models or not agent_models:
        return key_models or agent_models
    return tuple(m for m in key_models if m in agent_models) or ("-",)  # nothing in common: nothing allowed


def require_governance(principal: Principal) -> None:
    """Raise 403 unless the caller holds the governance role (halts are lifted by it alone)."""
    if not principal.governance:
        raise Forbidden(
            "lifting a halt needs a governance key (role 'governance'); the admin key cannot",
            code="governance_required",
        )


def require_admin(principal: Principal, write: bool = True) -> None:
    """Raise 403 unless the caller is the admin (or, for reads, a read-only admin key)."""
    if principal.is_admin or (not write and principal.admin_read):
        return
    if principal.admin_read:
        raise Forbidden("this key may only read the admin API; changes need the admin key", code="admin_read_only")
    raise Forbidden(
        "this endpoint needs the admin key (or, to read, a key with role 'admin_read')", code="admin_required"
    )
