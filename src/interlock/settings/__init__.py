"""One typed settings model, loaded from a TOML file with environment overrides, passed down.

Precedence: built-in defaults < the TOML file (`--config` or `INTERLOCK_CONFIG`) < environment
variables of the form `INTERLOCK_<SECTION>__<KEY>` (for example `INTERLOCK_SERVER__PORT=9000`).
An invalid config stops the start with a message naming the file, the key and the problem.

The sections live in the modules of this package, by area (`sections`, `models`, `agents`, `flywheel`);
everything is importable from `interlock.settings`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, model_validator

from interlock.settings.agents import McpServerSettings, McpSettings, OversightSettings
from interlock.settings.base import (
    DEFAULT_CHAT_ALIAS,
    DEFAULT_EMBEDDING_ALIAS,
    ConfigError,
    OptionsT,
    _Strict,
    describe_errors,
)
from interlock.settings.flywheel import CaptureSettings, FlywheelMetric, FlywheelSettings
from interlock.settings.models import (
    DeploymentSettings,
    ModelSettings,
    RolloutSettings,
    RouterSettings,
    VariantSettings,
    _default_models,
)
from interlock.settings.sections import (
    AlertSettings,
    AuditSettings,
    CacheSettings,
    EngineSettings,
    GovernanceSettings,
    GuardrailSettings,
    MetricsSettings,
    PluginSettings,
    ResponsesSettings,
    RoiSettings,
    RoiTaskType,
    RoutingSettings,
    ServerSettings,
    StoreSettings,
    TracingSettings,
)

__all__ = [
    "DEFAULT_CHAT_ALIAS",
    "DEFAULT_EMBEDDING_ALIAS",
    "AlertSettings",
    "AuditSettings",
    "CacheSettings",
    "CaptureSettings",
    "ConfigError",
    "DeploymentSettings",
    "EngineSettings",
    "FlywheelMetric",
    "FlywheelSettings",
    "GovernanceSettings",
    "GuardrailSettings",
    "McpServerSettings",
    "McpSettings",
    "MetricsSettings",
    "ModelSettings",
    "OptionsT",
    "OversightSettings",
    "PluginSettings",
    "ResponsesSettings",
    "RoiSettings",
    "RoiTaskType",
    "RolloutSettings",
    "RouterSettings",
    "RoutingSettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "TracingSettings",
    "VariantSettings",
    "describe_errors",
    "load_settings",
]


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
    oversight: OversightSettings = Field(default_factory=OversightSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    flywheel: FlywheelSettings = Field(default_factory=FlywheelSettings)
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
            for v in m.variants:
                target_model = self.models.get(v.model)
                if target_model is None or target_model.router is not None or target_model.variants:
                    raise ValueError(f"models.{alias}.variants: '{v.model}' is not a model alias with a provider")
                if target_model.mode != m.mode:
                    raise ValueError(f"models.{alias}.variants: '{v.model}' is a {target_model.mode} model")
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
