"""The service's sections: server, store, engine, routing, governance, audit, cache, responses, metrics,
traces, ROI, alerts, guardrails and plugins."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import Field, SecretStr, model_validator

from interlock.settings.base import _Strict
from interlock.types.tenancy import CacheScope


class ServerSettings(_Strict):
    """The HTTP listener."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Upstream timeouts, in seconds.
    connect_timeout: float = Field(default=10.0, gt=0)
    first_token_timeout: float = Field(default=60.0, gt=0)
    total_timeout: float = Field(default=600.0, gt=0)


class StoreSettings(_Strict):
    """Where keys and the ledger live, how often the ledger is flushed, and how long SQLite waits for a lock."""

    url: str = ""  # empty: sqlite:///<home>/interlock.db
    flush_interval_ms: int = Field(default=100, ge=1, le=10_000)
    flush_max_rows: int = Field(default=512, ge=1)
    key_refresh_interval_s: float = Field(default=2.0, gt=0)
    # How long a SQLite connection waits for another writer's lock before it fails ("database is locked").
    busy_timeout_ms: int = Field(default=30_000, ge=0)
    # Ledger rows the database refuses (locked, unreachable) wait here, fsynced, until it takes them again.
    spool_path: str = ""  # empty: <home>/ledger-spool.jsonl
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=4096)  # full: new requests get 503


class EngineSettings(_Strict):
    """Capacity of the embedded llama.cpp engine (shared by all local chat models)."""

    slots: int = Field(default=8, ge=1, le=256)
    n_ctx_per_slot: int = Field(default=2048, ge=128)
    queue_size: int = Field(default=64, ge=0)
    n_batch: int = Field(default=512, ge=32)
    threads: int = Field(default=0, ge=0)  # 0: all cores
    max_tokens_default: int = Field(default=512, ge=1)
    share_prefixes: bool = True  # copy a prompt prefix another slot holds or is decoding, instead of decoding it again
    # Host memory for the KV cells of prompts no slot holds any more (a slot's, saved before a new request
    # overwrites it); 0 turns the prompt cache off. With the per-sequence KV cache and share_prefixes.
    prompt_cache_mib: int = Field(default=256, ge=0, le=1 << 20)
    # Which requests may reuse each other's prompt KV cells (slots, shared prefixes, the prompt cache):
    # those of one key (the default), one team, one organisation, or everybody's (`shared`). A reused
    # prefix answers sooner, so sharing it across callers tells one what another's prompt starts with.
    cache_scope: CacheScope = "key"


class RoutingSettings(_Strict):
    """Failover and circuit breaking, for every alias with deployments."""

    retries: int = Field(default=2, ge=0, le=10)  # extra attempts after the first, before the first byte
    backoff_ms: int = Field(default=50, ge=0, le=10_000)  # doubled after each failed attempt, with jitter
    breaker_failures: int = Field(default=5, ge=1)  # consecutive failures that open a deployment's breaker
    breaker_cooldown_s: float = Field(default=30.0, gt=0)  # open time before one half-open probe


class GovernanceSettings(_Strict):
    """Where budget and rate-limit counters live, and how budgets reserve."""

    redis_url: str = ""  # empty: in this process (one replica); redis://... to share between replicas
    redis_prefix: str = "interlock:"  # key prefix, so several deployments can share one Redis
    output_cap: int = Field(default=4096, ge=1)  # max_tokens assumed (and enforced) when a budgeted request sets none
    reservation_ttl_s: int = Field(default=900, ge=1)  # a reservation held by a dead replica expires after this
    rate_limit_window_s: float = Field(default=60.0, gt=0)  # RPM/TPM windows; shorter only for tests
    image_tokens: int = Field(default=2500, ge=1)  # the worst case billed per image part, for reservations
    reconcile_s: float = Field(default=60.0, ge=0)  # budget counters checked against the ledger; 0: never
    fail_open: bool = False  # shared counters down: refuse budgeted requests with 503 (false) or serve unmetered
    refresh_s: float = Field(default=2.0, gt=0)  # how often budgets and limits are re-read from the store
    reference_model: str = "gpt-4o"  # priced with genai-prices for the savings report; "" to turn off
    velocity_factor: float = Field(default=10.0, gt=1)  # alert when a key's minute is this many times its norm
    velocity_min_usd: Decimal = Field(default=Decimal("1"), ge=0)  # ... and at least this much in that minute
    velocity_history_min: int = Field(default=60, ge=1)
    velocity_suspend: bool = False  # also suspend the key
    velocity_interval_s: float = Field(default=60.0, gt=0)


class AuditSettings(_Strict):
    """Where the audit log's signing key and signed head live, and how often checkpoints are signed."""

    # Default: INTERLOCK_HOME. Replicas sharing one PostgreSQL audit log must share this folder (or a
    # copy of the key and a common head file), e.g. a mounted secret volume.
    dir: str = ""
    checkpoint_every: int = Field(default=100, ge=1)
    checkpoint_interval_s: float = Field(default=60.0, gt=0)


class CacheSettings(_Strict):
    """The response cache backend (opt-in per model with `cache_ttl_s`, or per key)."""

    url: str = ""  # empty: in this process; redis://host:port/db to share between replicas
    max_entries: int = Field(default=10_000, ge=1)  # in-process backend only


class ResponsesSettings(_Strict):
    """The Responses API's response store (`previous_response_id`, `GET /v1/responses/{id}`)."""

    retention_s: int = Field(default=30 * 86_400, ge=1)  # a stored response is deleted this long after it was made


class MetricsSettings(_Strict):
    """Prometheus `/metrics`: readable with the admin key, an admin_read key, or `token`."""

    enabled: bool = True
    token: SecretStr | None = None  # a scrape-only bearer token (also INTERLOCK_METRICS__TOKEN)
    key_names: bool = False  # label requests, tokens and cost with the key's name (one series per key)


class TracingSettings(_Strict):
    """OpenTelemetry traces (GenAI semantic conventions); off by default."""

    enabled: bool = False
    otlp_endpoint: str = ""  # e.g. http://127.0.0.1:4318/v1/traces; needs opentelemetry-exporter-otlp-proto-http
    service_name: str = "interlock"


class RoiTaskType(_Strict):
    """The manual work one completed outcome of a task type replaces."""

    minutes: Decimal = Field(gt=0)
    hourly_usd: Decimal = Field(ge=0)


class RoiSettings(_Strict):
    """`[roi.task_types.<name>]`: what each task type's completed outcome is worth (`interlock spend --roi`).
    When any is configured, `POST /v1/outcomes` accepts only these task types."""

    task_types: dict[str, RoiTaskType] = Field(default_factory=dict)


class AlertSettings(_Strict):
    """Budget-threshold alerts: audited, and sent as a signed webhook when `webhook_url` is set."""

    budget_thresholds: list[float] = Field(default_factory=lambda: [0.8, 1.0])  # shares of each budget's limit
    interval_s: float = Field(default=30.0, gt=0)  # how often budgets are checked
    webhook_url: str = ""
    webhook_secret: SecretStr | None = None  # HMAC-SHA256 key (also INTERLOCK_ALERTS__WEBHOOK_SECRET)
    webhook_attempts: int = Field(default=5, ge=1, le=20)

    @model_validator(mode="after")
    def _check(self) -> AlertSettings:
        if any(not 0 < t <= 10 for t in self.budget_thresholds):
            raise ValueError("alerts.budget_thresholds: each must be a share of the limit, above 0 (1.0 = 100%)")
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError("alerts.webhook_url must be an http:// or https:// URL")
        if self.webhook_url and (self.webhook_secret is None or not self.webhook_secret.get_secret_value()):
            raise ValueError("alerts.webhook_secret is required with alerts.webhook_url (webhooks are signed)")
        return self


class GuardrailSettings(_Strict):
    """`[guardrails]`: content checks on every request and answer (see the README's Guardrails section).

    `detectors` run on every text; `untrusted` run on tool results only (prompt injection). Each is a
    plugin of the `interlock.guardrails` group, named by its table, with that table as its options.
    `policy` is the default policy (`guardrails.policy.PolicyRules`: `input`, `output`, `patterns`,
    `keywords`), validated at startup; empty: the shipped default.
    """

    enabled: bool = True
    hold_back_chars: int = Field(default=128, ge=0, le=4096)  # streamed text held back for scanning
    refresh_s: float = Field(default=2.0, gt=0)  # scoped policies re-read from the store this often
    detectors: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"pii": dict[str, Any](), "secrets": {}})
    untrusted: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"injection": dict[str, Any]()})
    policy: dict[str, Any] = Field(default_factory=dict)


class PluginSettings(_Strict):
    """Python modules imported at startup, before plugin options are validated, so they can register plugins."""

    modules: list[str] = Field(default_factory=list)
