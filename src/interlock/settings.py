"""One typed settings model, loaded from a TOML file with environment overrides, passed down.

Precedence: built-in defaults < the TOML file (`--config` or `INTERLOCK_CONFIG`) < environment
variables of the form `INTERLOCK_<SECTION>__<KEY>` (for example `INTERLOCK_SERVER__PORT=9000`).
An invalid config stops the start with a message naming the file, the key and the problem.

A model's table holds the keys every deployment has (this module's `ModelSettings`) and the options of
its provider plugin, which this module keeps as data: `interlock.plugins` validates them at startup
against the plugin's own `Options` model. Nothing here knows a plugin by name.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

DEFAULT_CHAT_ALIAS = "smollm2"
DEFAULT_EMBEDDING_ALIAS = "minilm"

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the source, the key and the problem."""

    @classmethod
    def of(cls, source: str, problems: Sequence[str]) -> ConfigError:
        """`invalid config in SOURCE:`, then one indented `key.path: problem` line per problem."""
        return cls("\n".join([f"invalid config in {source}:", *(f"  {p}" for p in problems)]))


def describe_errors(exc: ValidationError, at: Sequence[str | int] = ()) -> list[str]:
    """One `key.path: problem` per error in `exc`, its keys under `at` (the table that was validated)."""
    lines = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in (*at, *err["loc"])) or "(top level)"
        problem = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{key}: {problem}")
    return lines


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class RouterSettings(_Strict):
    """A learned router: per request, pick one of the router file's models by the prompt.

    One knob: `threshold` (the file's score threshold), or `strong_share` (the share of calls that may
    go past the cheapest model); neither means the file's default.
    """

    file: str
    threshold: float | None = None
    strong_share: float | None = Field(default=None, ge=0, le=1)
    models: dict[str, str] = Field(default_factory=dict)  # router model name -> alias (default: same name)

    @model_validator(mode="after")
    def _one_knob(self) -> RouterSettings:
        if self.threshold is not None and self.strong_share is not None:
            raise ValueError("set 'threshold' or 'strong_share', not both")
        return self


class DeploymentSettings(BaseModel):
    """One place an alias is served; unset fields inherit from the alias.

    Keys not defined here are the provider's options (validated by its plugin at startup).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    provider: str
    model: str = ""
    base_url: str | None = None
    price_input_per_mtok: Decimal | None = Field(default=None, ge=0)
    price_output_per_mtok: Decimal | None = Field(default=None, ge=0)
    tags: list[str] = Field(default_factory=list)
    weight: float = Field(default=1.0, gt=0)
    priority: int = Field(default=0, ge=0)  # lower is preferred; higher priorities are fallbacks

    @model_validator(mode="after")
    def _no_alias_keys(self) -> DeploymentSettings:
        # A key of the alias (mode, fallbacks, ...) would otherwise pass as a provider option unchecked.
        alias_only = sorted(set(self.model_extra or ()) & set(ModelSettings.model_fields))
        if alias_only:
            raise ValueError(f"set {', '.join(map(repr, alias_only))} on the model, not on one deployment")
        return self


class ModelSettings(BaseModel):
    """One model alias: where it runs, what it costs, what it can do.

    An alias is served by its own `provider` fields, or by a list of `deployments` (balanced, with
    failover), and may name `fallbacks`: other aliases tried when all its deployments fail. Keys not
    defined here are provider options: `plugin_options()` reads them through the provider plugin's model.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    provider: str = ""
    model: str = ""  # upstream model name; defaults to the alias
    mode: Literal["chat", "embedding"] = "chat"
    base_url: str | None = None  # the upstream's address; pricing also reads it to find the catalog entry
    price_input_per_mtok: Decimal | None = Field(default=None, ge=0)
    price_output_per_mtok: Decimal | None = Field(default=None, ge=0)
    context_window: int | None = Field(default=None, ge=1)
    tags: list[str] = Field(default_factory=list)
    deployments: list[DeploymentSettings] = Field(default_factory=list)
    fallbacks: list[str] = Field(default_factory=list)
    weight: float = Field(default=1.0, gt=0)
    priority: int = Field(default=0, ge=0)
    cache_ttl_s: int = Field(default=0, ge=0)  # response cache for this alias; 0 = off
    router: RouterSettings | None = None

    @model_validator(mode="after")
    def _check_target(self) -> ModelSettings:
        targets = sum(bool(x) for x in (self.provider, self.deployments, self.router))
        if targets == 0:
            raise ValueError("needs 'provider', a list of 'deployments', or a 'router'")
        if targets > 1:
            raise ValueError("set one of 'provider', 'deployments' or 'router'")
        return self

    def deployment_settings(self) -> list[ModelSettings]:
        """Each deployment as a self-contained ModelSettings (the alias's own fields when it has none).

        A deployment inherits what it leaves unset; its tags add to the alias's, and a table-valued
        provider option (such as `headers`) merges with the alias's, the deployment's entries winning.
        """
        if self.router is not None:
            return []
        if not self.deployments:
            return [self]
        out = []
        inherited = self.model_extra or {}
        for d in self.deployments:
            fields = d.model_dump(exclude_unset=True)
            fields["tags"] = [*self.tags, *d.tags]
            for key, value in (d.model_extra or {}).items():
                if isinstance(value, dict) and isinstance(inherited.get(key), dict):
                    fields[key] = {**inherited[key], **value}
            out.append(self.model_copy(update={**fields, "deployments": [], "fallbacks": []}))
        return out

    def plugin_options(self, schema: type[OptionsT]) -> OptionsT:
        """This deployment's provider options, validated by the provider plugin's `schema`.

        `schema` sees the keys the shared model does not define, and any shared key it declares itself
        and the table sets (so a provider can require `base_url`, which pricing reads too).
        """
        data = dict(self.model_extra or {})
        for name in schema.model_fields.keys() & type(self).model_fields.keys() & self.model_fields_set:
            data[name] = getattr(self, name)
        return schema.model_validate(data)


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


def _default_models() -> dict[str, ModelSettings]:
    return {
        DEFAULT_CHAT_ALIAS: ModelSettings(
            provider="local",
            model="SmolLM2-135M-Instruct",
            price_input_per_mtok=Decimal(0),
            price_output_per_mtok=Decimal(0),
            tags=["local", "sovereign"],
        ),
        DEFAULT_EMBEDDING_ALIAS: ModelSettings(
            provider="local",
            mode="embedding",
            model="all-MiniLM-L6-v2",
            price_input_per_mtok=Decimal(0),
            price_output_per_mtok=Decimal(0),
            tags=["local", "sovereign"],
        ),
    }


class Settings(_Strict):
    """Everything the gateway needs to start."""

    home: Path = Field(default_factory=lambda: Path("~/.interlock").expanduser())
    server: ServerSettings = Field(default_factory=ServerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    governance: GovernanceSettings = Field(default_factory=GovernanceSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    responses: ResponsesSettings = Field(default_factory=ResponsesSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    guardrails: GuardrailSettings = Field(default_factory=GuardrailSettings)
    roi: RoiSettings = Field(default_factory=RoiSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    models: dict[str, ModelSettings] = Field(default_factory=_default_models)
    source: str = "<defaults>"
    # From INTERLOCK_ADMIN_KEY only (never from the file); unset: generated under `home`.
    admin_key: SecretStr | None = Field(default=None, exclude=True, repr=False)

    @model_validator(mode="after")
    def _check_fallbacks(self) -> Settings:
        for alias, m in self.models.items():
            for fb in m.fallbacks:
                if fb not in self.models:
                    raise ValueError(f"models.{alias}.fallbacks names unknown model '{fb}'")
                if self.models[fb].mode != m.mode:
                    raise ValueError(f"models.{alias}.fallbacks: '{fb}' is a {self.models[fb].mode} model")
            for target in m.router.models.values() if m.router else ():
                if target not in self.models or self.models[target].router is not None:
                    raise ValueError(f"models.{alias}.router.models: '{target}' is not a model alias with a provider")
        return self

    def audit_dir(self) -> Path:
        """The folder with the audit signing key and head file."""
        return Path(self.audit.dir).expanduser() if self.audit.dir else self.home

    def store_url(self) -> str:
        """The store URL, defaulting to a SQLite file under the home folder."""
        return self.store.url or f"sqlite:///{self.home / 'interlock.db'}"


def _set_path(tree: dict[str, Any], path: list[str], value: str) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"environment override {'.'.join(path)}: '{part}' is not a section")
    node[path[-1]] = value


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith("INTERLOCK_") or "__" not in name:
            continue
        path = [p.lower() for p in name[len("INTERLOCK_") :].split("__")]
        _set_path(tree, path, value)
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_settings(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Load settings from `path` (or `INTERLOCK_CONFIG`), then apply environment overrides."""
    env = dict(os.environ if environ is None else environ)
    path = path or env.get("INTERLOCK_CONFIG") or None
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        file = Path(path).expanduser()
        source = str(file)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid config in {file}: not valid TOML: {exc}") from None
        # Declaring [models] replaces the defaults, so the file says exactly what is served.
    data = _merge(data, _env_overrides(env))
    data.pop("admin_key", None)
    if env.get("INTERLOCK_ADMIN_KEY"):
        data["admin_key"] = env["INTERLOCK_ADMIN_KEY"]
    if "INTERLOCK_HOME" in env:
        data["home"] = env["INTERLOCK_HOME"]
    if "home" in data:
        data["home"] = str(Path(str(data["home"])).expanduser())
    data["source"] = source
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError.of(source, describe_errors(exc)) from None
