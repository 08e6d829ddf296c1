"""Config loading: defaults, env overrides, and errors that name the file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.app import create_app
from interlock.plugins import provider_configs
from interlock.settings import ConfigError, Settings, load_settings

README = Path(__file__).resolve().parents[1] / "README.md"
SETTINGS_SOURCES = sorted((Path(__file__).resolve().parents[1] / "src" / "interlock" / "settings").glob("*.py"))


def _load(tmp_path: Path, config: str) -> Settings:
    cfg = tmp_path / "c.toml"
    cfg.write_text(config)
    return load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home")})


def _readme_toml(section: str) -> str:
    """The first TOML block of a README section."""
    return README.read_text().split(f"\n## {section}\n", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]


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
    with pytest.raises(ConfigError) as info:
        provider_configs(load_settings(cfg, {}))
    assert str(info.value) == f"invalid config in {cfg}:\n  models.gpt.base_url: Field required"


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


def test_provider_options_are_checked_by_the_provider_with_the_key_path(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        """
[models.gpt]
provider = "openai_compatible"
base_url = "http://127.0.0.1:1/v1"
api_key_env = "not a name"
bse_url = "typo"

[models.mini]
provider = "local"
headers = { a = "b" }

[models.llama]
api_key_env = "SHARED_KEY"
headers = { x-team = "search" }
[[models.llama.deployments]]
provider = "openai_compatible"
base_url = "http://a/v1"
headers = { x-replica = "a" }
[[models.llama.deployments]]
provider = "anthropic"
""",
    )
    with pytest.raises(ConfigError) as info:
        provider_configs(settings)
    assert str(info.value).splitlines() == [
        f"invalid config in {tmp_path / 'c.toml'}:",
        "  models.gpt.api_key_env: Value error, must be the *name* of an environment variable, such as OPENAI_API_KEY",
        "  models.gpt.bse_url: unknown key",
        "  models.mini.headers: unknown key",
        "  models.llama.deployments.1.base_url: Field required",
    ]


def test_deployments_inherit_the_alias_options(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        """
[models.llama]
api_key_env = "SHARED_KEY"
headers = { x-team = "search", x-replica = "?" }
cache_salt = true
[[models.llama.deployments]]
provider = "openai_compatible"
base_url = "http://a/v1"
headers = { x-replica = "a" }
[[models.llama.deployments]]
provider = "openai_compatible"
base_url = "http://b/v1"
api_key_env = "OWN_KEY"
""",
    )
    a, b = (c.options for c in provider_configs(settings)["llama"])
    assert a.model_dump() == {
        "base_url": "http://a/v1",
        "api_key_env": "SHARED_KEY",
        "headers": {"x-team": "search", "x-replica": "a"},
        "responses_api": "chat",
        "cache_salt": True,
    }
    assert b.model_dump() == {
        "base_url": "http://b/v1",
        "api_key_env": "OWN_KEY",
        "headers": {"x-team": "search", "x-replica": "?"},
        "responses_api": "chat",
        "cache_salt": True,
    }


def test_shared_keys_stay_shared(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[models.x]\nmode = "embedding"\n[[models.x.deployments]]\nprovider = "local"\nfallbacks = []\n')
    with pytest.raises(ConfigError, match=r"models\.x\.deployments\.0: .*set 'fallbacks' on the model"):
        load_settings(cfg, {})
    router = '[models.auto]\ncolour = "blue"\n[models.auto.router]\nfile = "r.json"\n'
    with pytest.raises(ConfigError, match=r"models\.auto\.colour: unknown key"):
        provider_configs(_load(tmp_path, router))


def test_every_readme_example_is_valid(tmp_path: Path) -> None:
    """The Configuration example, with the Routing one added to it."""
    settings = _load(tmp_path, _readme_toml("Configuration") + _readme_toml("Routing"))
    configs = provider_configs(settings)
    assert [c.plugin.name for c in configs["llama"]] == ["openai_compatible"] * 3
    assert configs["smollm2"][0].plugin.name == "local" and configs["claude"][0].plugin.name == "anthropic"


def test_settings_know_no_plugin_by_name() -> None:
    assert len(SETTINGS_SOURCES) >= 5
    source = "".join(p.read_text() for p in SETTINGS_SOURCES)
    assert not [name for name in ("openai_compatible", "anthropic", "fake") if name in source]
