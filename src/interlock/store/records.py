"""Rows the store keeps, as typed records shared by every backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SpendGroup = Literal["org", "team", "key", "model", "day"]
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
    """Requests and tokens per minute for a key, team or model alias (None: no limit of that kind)."""

    scope: Scope
    scope_id: str
    rpm: int | None
    tpm: int | None
    updated_at: float
