"""Config loading: defaults, env overrides, and errors that name the file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.app import create_app
from interlock.settings import ConfigError, load_settings


def test_defaults_serve_the_embedded_model(tmp_path: Path) -> None:
    s = load_settings(None, {"INTERLOCK_HOME": str(tmp_path)})
    assert s.models["smollm2"].provider == "local" and s.models["minilm"].mode == "embedding"
    assert s.server.port == 8080 and s.store_url() == f"sqlite:///{tmp_path}/interlock.db"


def test_env_overrides(tmp_path: Path) -> None:
    s = load_settings(None, {"INTERLOCK_SERVER__PORT": "9123", "INTERLOCK_STORE__FLUSH_INTERVAL_MS": "7"})
    assert s.server.port == 9123 and s.store.flush_interval_ms == 7


def test_error_names_file_key_and_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[models.gpt]\nprovider = "openai_compatible"\nprice_input_per_mtok = "lots"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, {})
    text = str(info.value)
    assert str(cfg) in text and "models.gpt.price_input_per_mtok" in text
    assert "valid decimal" in text
    cfg.write_text('[models.gpt]\nprovider = "openai_compatible"\n')
    with pytest.raises(ConfigError, match=r"models\.gpt: .*needs 'base_url'"):
        load_settings(cfg, {})


def test_unknown_key_and_bad_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"server\.prot: unknown key"):
        load_settings(cfg, {})
    cfg.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg, {})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", {})


def test_unknown_provider_and_missing_api_key_fail_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[models.x]\nprovider = "telepathy"\n')
    with pytest.raises(
        ConfigError,
        match=r"models\.x\.provider: unknown provider 'telepathy' \(registered: .*openai_compatible",
    ):
        create_app(load_settings(cfg, {}))
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    cfg.write_text(
        '[models.x]\nprovider = "openai_compatible"\nbase_url = "http://127.0.0.1:1/v1"\n'
        'api_key_env = "NO_SUCH_KEY_VAR"\n'
    )
    with pytest.raises(ConfigError, match="NO_SUCH_KEY_VAR is not set"):
        create_app(load_settings(cfg, {}))
