"""The public surface is pinned: a name added to or dropped from `__all__` must be added or dropped here too.

In the style of httpx's tests/test_exported_members.py. `interlock.plugins`, `interlock.types` and
`interlock.errors` are what plugins and capability packages build on, so a change to them is a
deliberate act, not a side effect.
"""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

import interlock.errors
import interlock.plugins
import interlock.types

PLUGINS = [
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

TYPES = [
    "SCALE",
    "AssistantMessage",
    "Batch",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "ChunkChoice",
    "ContentPart",
    "Delta",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "FinishReason",
    "FunctionCall",
    "FunctionDef",
    "ImagePart",
    "JsonSchemaSpec",
    "Message",
    "NamedToolChoice",
    "Price",
    "ResponseFormat",
    "Role",
    "StreamOptions",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "Usage",
    "reasoning_text",
]

ERRORS = [
    "BadRequest",
    "BudgetExceeded",
    "Forbidden",
    "GatewayError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "UpstreamError",
    "UpstreamTimeout",
    "describe_validation_error",
]

SURFACES = [(interlock.plugins, PLUGINS), (interlock.types, TYPES), (interlock.errors, ERRORS)]


@pytest.mark.parametrize(("module", "expected"), SURFACES, ids=lambda x: getattr(x, "__name__", ""))
def test_all_is_the_pinned_list(module: ModuleType, expected: list[str]) -> None:
    assert module.__all__ == expected


@pytest.mark.parametrize(("module", "expected"), SURFACES, ids=lambda x: getattr(x, "__name__", ""))
def test_every_exported_name_exists(module: ModuleType, expected: list[str]) -> None:
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{module.__name__}.__all__ names what the module lacks: {missing}"


@pytest.mark.parametrize("module", [interlock.types, interlock.errors], ids=lambda m: m.__name__)
def test_every_public_class_and_function_is_exported(module: ModuleType) -> None:
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }
    assert not defined - set(module.__all__), f"public in {module.__name__} but not in __all__"
