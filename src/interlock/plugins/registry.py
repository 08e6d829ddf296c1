"""One typed registry per entry-point group: providers, guardrails, tools.

A plugin is a name, a pydantic `Options` model (validated from the plugin's own TOML table) and a
factory. Packages publish plugins under an entry-point group, the built-ins included:

    [project.entry-points."interlock.providers"]
    my_provider = "my_package.provider:PLUGIN"

An entry point is imported only when a config names it. A module listed in `[plugins] modules` (or a
test) may also call `registry.register(plugin)`; such modules are imported at startup, before plugin
options are validated. The registries live for the process, as the installed entry points do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from interlock.settings import ModelSettings

FactoryT = TypeVar("FactoryT")


class PluginError(Exception):
    """A plugin cannot be registered or loaded: a name taken twice, or an entry point that is no `Plugin`."""


class PluginOptions(BaseModel):
    """A convenient base for a plugin's `Options`: unknown keys are errors, values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Plugin(Generic[FactoryT]):
    """A named factory with the pydantic model of its options."""

    name: str
    options: type[BaseModel]
    factory: FactoryT


# The ground floor cannot name `Provider` or `ProviderContext` (they live in `providers/`), so the
# context and the options are `Any` here and the gateway checks that the result is a `Provider`.
ProviderFactory = Callable[[str, "ModelSettings", Any, Any], object]
"""`create(alias, model, context, options) -> Provider`: one deployment's provider, given its validated options."""


class Registry(Generic[FactoryT]):
    """The plugins of one entry-point group, loaded lazily, plus those registered in-process."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._plugins: dict[str, Plugin[FactoryT]] = {}

    def __repr__(self) -> str:
        return f"Registry({self.group!r})"

    def register(self, plugin: Plugin[FactoryT]) -> Plugin[FactoryT]:
        """Add `plugin` in-process (again is a no-op); a name another plugin or an entry point holds is an error."""
        if not isinstance(plugin, Plugin):
            raise PluginError(f"{self.group}: {plugin!r} is not an interlock Plugin")
        held = self._plugins.get(plugin.name)
        if held is plugin:
            return plugin
        if held is not None or self._entry_point(plugin.name) is not None:
            raise PluginError(f"{self.group}: a plugin named {plugin.name!r} is already registered")
        self._plugins[plugin.name] = plugin
        return plugin

    def names(self) -> list[str]:
        """Every plugin name, registered or published as an entry point, without importing any."""
        return sorted({*self._plugins, *(ep.name for ep in entry_points(group=self.group))})

    def get(self, name: str) -> Plugin[FactoryT] | None:
        """The plugin called `name`, importing its entry point on first use; None if there is none."""
        plugin = self._plugins.get(name)
        if plugin is not None:
            return plugin
        ep = self._entry_point(name)
        if ep is None:
            return None
        try:
            loaded = ep.load()
        except Exception as exc:
            raise PluginError(f"{self.group}: cannot import {ep.value}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(loaded, Plugin) or loaded.name != name:
            raise PluginError(
                f"{self.group}: entry point {name} = {ep.value} is not an interlock Plugin named {name!r}"
            )
        self._plugins[name] = loaded
        return loaded

    def _entry_point(self, name: str) -> EntryPoint | None:
        for ep in entry_points(group=self.group, name=name):
            return ep
        return None


PROVIDERS: Registry[ProviderFactory] = Registry("interlock.providers")
"""Ways of talking to a model (`providers/`); a deployment's `provider` key names one."""

GUARDRAILS: Registry[Callable[..., object]] = Registry("interlock.guardrails")
"""Content checks on requests and answers (none published yet)."""

TOOLS: Registry[Callable[..., object]] = Registry("interlock.tools")
"""Tools the gateway runs for agents (none published yet)."""
