"""Rows the store keeps, as typed records shared by every backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SpendGroup = Literal["key", "model", "day"]


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
