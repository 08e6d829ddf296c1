"""Model aliases: deployments, routers, variants and rollouts, and the default models.

A model's table holds the keys every deployment has (`ModelSettings`) and the options of its provider plugin,
which are kept as data here: `interlock.plugins` validates them at startup against the plugin's own `Options`
model. Nothing here knows a plugin by name.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from interlock.settings.base import DEFAULT_CHAT_ALIAS, DEFAULT_EMBEDDING_ALIAS, OptionsT, _Strict


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


class VariantSettings(_Strict):
    """One variant of an alias: another alias that answers a share of its traffic, or shadows it."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    model: str  # an alias with a provider (not a router or another variant alias)
    weight: float = Field(default=1.0, ge=0)  # share of the traffic among the serving variants
    shadow: bool = False  # answers in the background (recorded, never returned), on `shadow_share` of requests
    shadow_share: float = Field(default=1.0, ge=0, le=1)


class RolloutSettings(_Strict):
    """A canary: `canary` against `baseline`, promoted or rolled back automatically (see `flywheel.rollout`)."""

    canary: str
    baseline: str
    metric: str | None = None  # a declared feedback metric; None: decide on the error rate alone
    min_samples: int = Field(default=200, ge=10)  # per variant, before any decision
    margin: float = Field(default=0.0, ge=0)  # how much worse on the metric the canary may be and still pass
    max_error_increase: float = Field(default=0.01, ge=0, le=1)  # allowed rise of the error rate
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    interval_s: float = Field(default=60.0, gt=0)


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
    variants: list[VariantSettings] = Field(default_factory=list)
    rollout: RolloutSettings | None = None

    @model_validator(mode="after")
    def _check_target(self) -> ModelSettings:
        targets = sum(bool(x) for x in (self.provider, self.deployments, self.router, self.variants))
        if targets == 0:
            raise ValueError("needs 'provider', a list of 'deployments', a 'router' or 'variants'")
        if targets > 1:
            raise ValueError("set one of 'provider', 'deployments', 'router' or 'variants'")
        if self.variants:
            names = [v.name for v in self.variants]
            if len(set(names)) != len(names):
                raise ValueError("variants: each variant needs its own name")
            if not any(v.weight > 0 and not v.shadow for v in self.variants):
                raise ValueError("variants: at least one variant must serve (weight above 0, not a shadow)")
        if self.rollout is not None:
            serving = {v.name for v in self.variants if not v.shadow}
            for field_name in ("canary", "baseline"):
                if getattr(self.rollout, field_name) not in serving:
                    raise ValueError(f"rollout.{field_name}: not a serving variant of this alias")
            if self.rollout.canary == self.rollout.baseline:
                raise ValueError("rollout: canary and baseline must differ")
        return self

    def deployment_settings(self) -> list[ModelSettings]:
        """Each deployment as a self-contained ModelSettings (the alias's own fields when it has none).

        A deployment inherits what it leaves unset; its tags add to the alias's, and a table-valued
        provider option (such as `headers`) merges with the alias's, the deployment's entries winning.
        """
        if self.router is not None or self.variants:
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
