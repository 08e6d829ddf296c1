"""Rows the store keeps, as typed records shared by every backend."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

KEY_COLUMNS = (
    "id, name, owner, hash, prefix, models, created_at, expires_at, revoked_at, residency, cache_ttl_s, team_id, "
    "suspended_at, suspended_reason, role, agent_id, owner_id"
)
USAGE_COLUMNS = (
    "request_id, ts, key_id, endpoint, alias, provider, upstream_model, stream, prompt_tokens, "
    "completion_tokens, usage_source, cost_micros, price_version, latency_ms, ttft_ms, status, error, "
    "deployment, attempts, team_id, org_id, reference_cost_micros, run_id, agent_id, owner_id, variant, "
    "model_version"
)
USAGE_COLUMN_COUNT = USAGE_COLUMNS.count(",") + 1
SpendGroup = Literal["org", "team", "key", "model", "endpoint", "day"]
# The `endpoint` column's values: the model endpoints, MCP tool calls and reads, shadow variants' answers.
LEDGER_ENDPOINTS = ("chat", "completions", "embeddings", "responses", "messages", "mcp", "shadow")
Scope = Literal["org", "team", "key", "model"]
Period = Literal["day", "month", "total"]


class DuplicateError(Exception):
    """A row with the same unique name exists already (any backend)."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A virtual key as stored: the hash, never the key itself."""

    id: str
    name: str
    owner: str
    hash: str
    prefix: str
    models: tuple[str, ...]
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    residency: str = ""  # "restricted": only local/sovereign deployments
    cache_ttl_s: int = 0  # response cache opt-in; 0 = off
    team_id: str | None = None
    suspended_at: float | None = None
    suspended_reason: str = ""
    role: str = ""  # rights on the admin API: "" none, "admin_read" read-only; "governance": halts agents
    agent_id: str | None = None  # a key of kind "agent": it authenticates as this agent (m0013)
    owner_id: str | None = None  # a person's own key: it acts as that owner (approvals, agent tokens; m0015)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> KeyRecord:
        """A key from a row of KEY_COLUMNS (any backend)."""
        (
            id_,
            name,
            owner,
            hash_,
            prefix,
            models,
            created,
            expires,
            revoked,
            residency,
            cache_ttl,
            team,
            susp,
            why,
            role,
            agent,
            owner_id,
        ) = row
        return cls(
            id=str(id_),
            name=str(name),
            owner=str(owner),
            hash=str(hash_),
            prefix=str(prefix),
            models=tuple(json.loads(str(models))),
            created_at=float(created),
            expires_at=None if expires is None else float(expires),
            revoked_at=None if revoked is None else float(revoked),
            residency=str(residency),
            cache_ttl_s=int(cache_ttl),
            team_id=None if team is None else str(team),
            suspended_at=None if susp is None else float(susp),
            suspended_reason=str(why),
            role=str(role),
            agent_id=None if agent is None else str(agent),
            owner_id=None if owner_id is None else str(owner_id),
        )

    def to_row(self) -> tuple[object, ...]:
        """The values for KEY_COLUMNS."""
        return (
            self.id,
            self.name,
            self.owner,
            self.hash,
            self.prefix,
            json.dumps(list(self.models)),
            self.created_at,
            self.expires_at,
            self.revoked_at,
            self.residency,
            self.cache_ttl_s,
            self.team_id,
            self.suspended_at,
            self.suspended_reason,
            self.role,
            self.agent_id,
            self.owner_id,
        )


def new_request_id() -> str:
    """A unique id for a request, ordered by time; not a secret.

    32 hex digits: milliseconds since the epoch (48 bits), then 80 random bits, the layout of a
    UUIDv7. Time first keeps the ledger's primary-key index append-only: with a random id every
    insert lands on a different page of that index, which the SQLite WAL then writes out (and
    checkpoints) page by page, and which PostgreSQL's B-tree splits at random. The random part comes
    from `random` (seeded from the OS at start and reseeded after a fork), not `os.urandom`: that is
    a getrandom() system call per request, and system calls are dear in a virtual machine.
    """
    return f"req_{int(time.time() * 1000):012x}{random.getrandbits(80):020x}"


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One ledger row: what one authenticated request used and cost."""

    request_id: str
    ts: float
    key_id: str | None
    endpoint: str
    alias: str
    provider: str
    upstream_model: str
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    usage_source: str
    cost_micros: int
    price_version: str
    latency_ms: float
    ttft_ms: float | None
    status: int
    error: str | None = None
    deployment: str = ""
    attempts: int = 1
    team_id: str | None = None
    org_id: str | None = None
    reference_cost_micros: int = 0  # the same tokens at the reference (proprietary) model's price
    run_id: str = ""  # the caller's `x-interlock-run-id` header: groups an agent's requests into one run
    agent_id: str = ""  # the agent that made the request, and its owner ("" for other callers; m0013)
    owner_id: str = ""
    variant: str = ""  # the alias's variant that answered ("" when it has none; m0019)
    model_version: str = ""  # the served model file's version (its SHA-256, first 16 hex digits), local models

    def to_row(self) -> tuple[object, ...]:
        """The values in `USAGE_COLUMNS` order (the field order), for every store."""
        return (
            self.request_id,
            self.ts,
            self.key_id,
            self.endpoint,
            self.alias,
            self.provider,
            self.upstream_model,
            self.stream,
            self.prompt_tokens,
            self.completion_tokens,
            self.usage_source,
            self.cost_micros,
            self.price_version,
            self.latency_ms,
            self.ttft_ms,
            self.status,
            self.error,
            self.deployment,
            self.attempts,
            self.team_id,
            self.org_id,
            self.reference_cost_micros,
            self.run_id,
            self.agent_id,
            self.owner_id,
            self.variant,
            self.model_version,
        )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> UsageRecord:
        """A record from a `SELECT {USAGE_COLUMNS}` row (SQLite stores `stream` as 0/1)."""
        return cls(*row[:7], bool(row[7]), *row[8:])  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class SpendRow:
    """Spend aggregated over one group (a key, a model or a day)."""

    group: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    errors: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    reference_cost_micros: int = 0


@dataclass(frozen=True, slots=True)
class OrgRecord:
    """An organisation."""

    id: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class TeamRecord:
    """A team, inside one organisation."""

    id: str
    org_id: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class BudgetRecord:
    """A hard spending limit on an org, team or key, per UTC day, UTC month, or in total."""

    scope: Scope
    scope_id: str
    period: Period
    limit_micros: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class RateLimitRecord:
    """Requests and tokens per minute, and requests in flight, for a key, team or model alias (None: no limit
    of that kind)."""

    scope: Scope
    scope_id: str
    rpm: int | None
    tpm: int | None
    updated_at: float
    max_concurrent: int | None = None
