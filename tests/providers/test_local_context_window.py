"""`context_window` of a local model comes from its GGUF (capped by the engine's slot) when the config sets none."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.engines.gguf import GgufError, context_length, default_model_path
from interlock.gateway.routes import build_routes
from interlock.providers.base import ProviderContext
from interlock.routing.deployments import ModelRoute
from interlock.settings import DEFAULT_CHAT_ALIAS, DEFAULT_EMBEDDING_ALIAS, EngineSettings, ModelSettings, Settings


def _no_http() -> object:
    raise AssertionError("building routes opens no connection")


def _routes(tmp_path: Path, **fields: object) -> dict[str, ModelRoute]:
    settings = Settings.model_validate({"home": tmp_path, **fields})
    return build_routes(settings, ProviderContext(settings=settings, http=_no_http))  # type: ignore[arg-type]


def test_the_gguf_header_gives_the_trained_context() -> None:
    assert context_length(default_model_path()) == 8192  # SmolLM2-135M-Instruct: llama.context_length


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "x.gguf"
    other.write_bytes(b"NOPE" + bytes(20))
    with pytest.raises(GgufError, match="not a GGUF file"):
        context_length(other)
    truncated = tmp_path / "t.gguf"
    truncated.write_bytes(default_model_path().read_bytes()[:200])
    with pytest.raises(GgufError, match="unreadable GGUF header"):
        context_length(truncated)


def test_default_chat_model_gets_the_slot_size_it_can_hold(tmp_path: Path) -> None:
    routes = _routes(tmp_path)
    assert routes[DEFAULT_CHAT_ALIAS].model.context_window == EngineSettings().n_ctx_per_slot == 2048
    assert routes[DEFAULT_EMBEDDING_ALIAS].model.context_window is None  # the encoder reports none


def test_a_large_slot_gets_the_trained_context(tmp_path: Path) -> None:
    routes = _routes(tmp_path, engine={"n_ctx_per_slot": 32768})
    assert routes[DEFAULT_CHAT_ALIAS].model.context_window == 8192


def test_the_config_wins_over_the_file(tmp_path: Path) -> None:
    model = ModelSettings(provider="local", context_window=1000)
    assert _routes(tmp_path, models={"mine": model})["mine"].model.context_window == 1000


def test_a_missing_file_leaves_it_unknown(tmp_path: Path) -> None:
    model = ModelSettings.model_validate({"provider": "local", "path": str(tmp_path / "none.gguf")})
    assert _routes(tmp_path, models={"mine": model})["mine"].model.context_window is None
