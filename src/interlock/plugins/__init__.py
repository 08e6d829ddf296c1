"""The ground floor's extension points: the plugin registries (providers, guardrails, tools) and the
request path's hook interface (`Hook`, see `interlock.plugins.hooks`).

Capability packages and third-party plugins import from here, never from `gateway/`. This package
imports only `interlock.types`, `interlock.errors` and `interlock.settings`.
"""

from interlock.plugins.config import ProviderConfig, import_plugin_modules, provider_configs
from interlock.plugins.hooks import (
    Answered,
    Caller,
    CutStream,
    Denied,
    Hook,
    HookContext,
    ModelRequest,
    ModelResponse,
    Outcome,
)
from interlock.plugins.registry import (
    GUARDRAILS,
    PROVIDERS,
    TOOLS,
    Plugin,
    PluginError,
    PluginOptions,
    ProviderFactory,
    Registry,
)

__all__ = [
    "GUARDRAILS",
    "PROVIDERS",
    "TOOLS",
    "Answered",
    "Caller",
    "CutStream",
    "Denied",
    "Hook",
    "HookContext",
    "ModelRequest",
    "ModelResponse",
    "Outcome",
    "Plugin",
    "PluginError",
    "PluginOptions",
    "ProviderConfig",
    "ProviderFactory",
    "Registry",
    "import_plugin_modules",
    "provider_configs",
]
