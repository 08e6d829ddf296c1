"""The plugin registry: lazy entry points, in-process registration, `[plugins] modules`, and each plugin's options."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest
from pydantic import BaseModel
from starlette.testclient import TestClient

import interlock.plugins.registry as registry_module
from interlock.app import create_app
from interlock.plugins import PROVIDERS, Plugin, PluginError, PluginOptions, ProviderFactory, Registry
from interlock.settings import ConfigError, ModelSettings, load_settings
from tests.conftest import ADMIN_KEY

README = Path(__file__).resolve().parents[1] / "README.md"
BUILT_INS = ("anthropic", "local", "openai_compatible")


class _Options(PluginOptions):
    size: int = 1


def _create(alias: str, model: ModelSettings, context: object, options: _Options) -> object:
    return (alias, options.size)


def _plugin(name: str) -> Plugin[ProviderFactory]:
    return Plugin(name, _Options, _create)


def test_built_ins_are_published_entry_points_and_fake_is_not() -> None:
    published = {ep.name: ep.value for ep in entry_points(group="interlock.providers")}
    assert {name: published.get(name) for name in BUILT_INS} == {
        name: f"interlock.providers.{name}:PLUGIN" for name in BUILT_INS
    }
    assert "fake" not in published
    for name in BUILT_INS:
        plugin = PROVIDERS.get(name)
        assert plugin is not None and plugin.name == name and issubclass(plugin.options, BaseModel)


def test_entry_points_are_imported_only_when_named() -> None:
    code = (
        "import sys\n"
        "from interlock.plugins import PROVIDERS\n"
        "names = PROVIDERS.names()\n"
        "assert {'anthropic', 'local', 'openai_compatible'} <= set(names), names\n"
        "assert 'interlock.providers.anthropic' not in sys.modules\n"
        "assert PROVIDERS.get('anthropic').name == 'anthropic'\n"
        "assert 'interlock.providers.anthropic' in sys.modules\n"
        "assert 'interlock.providers.local' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_register_get_and_names() -> None:
    registry: Registry[ProviderFactory] = Registry("interlock.tests-only")
    plugin = _plugin("tiny")
    assert registry.get("tiny") is None and registry.names() == []
    assert registry.register(plugin) is plugin
    assert registry.register(plugin) is plugin  # again: no-op (a module imported twice)
    assert registry.get("tiny") is plugin and registry.names() == ["tiny"]
    with pytest.raises(PluginError, match="already registered"):
        registry.register(_plugin("tiny"))
    with pytest.raises(PluginError, match="not an interlock Plugin"):
        registry.register(_create)  # type: ignore[arg-type]


def test_a_name_published_as_an_entry_point_cannot_be_registered_again() -> None:
    with pytest.raises(PluginError, match="'local' is already registered"):
        PROVIDERS.register(_plugin("local"))


def test_an_entry_point_that_is_no_plugin_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = EntryPoint(name="bad", value="interlock.testing.fake:create", group="interlock.tests-only")

    def fake_entry_points(*, group: str, name: str | None = None) -> list[EntryPoint]:
        return [bad] if group == bad.group and name in (None, bad.name) else []

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    registry: Registry[ProviderFactory] = Registry("interlock.tests-only")
    assert registry.names() == ["bad"]
    with pytest.raises(PluginError, match="is not an interlock Plugin named 'bad'"):
        registry.get("bad")


def test_plugin_modules_are_imported_before_options_are_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[plugins]\nmodules = ["interlock.testing.fake"]\n\n[models.echo]\nprovider = "fake"\nsize = 2\n')
    with pytest.raises(ConfigError) as info:
        create_app(load_settings(cfg, {}))
    assert str(info.value) == f"invalid config in {cfg}:\n  models.echo.size: unknown key"
    assert PROVIDERS.get("fake") is not None  # registered by the import, before the options were checked
    cfg.write_text('[plugins]\nmodules = ["interlock.testing.nope", "interlock.testing.fake"]\n')
    with pytest.raises(ConfigError, match=r"plugins\.modules\.0: cannot import 'interlock\.testing\.nope'"):
        create_app(load_settings(cfg, {}))


def _readme_block(heading: str, lang: str, index: int = 0) -> str:
    section = README.read_text().split(f"### {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks: list[str] = re.findall(rf"```{lang}\n(.*?)```", section, re.S)
    return blocks[index]


def test_the_readme_plugin_example_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "canned.py").write_text(_readme_block("Writing a plugin", "python"))
    monkeypatch.syspath_prepend(str(folder))
    config = _readme_block("Writing a plugin", "toml") + "upper = true\n"
    cfg = tmp_path / "c.toml"
    cfg.write_text(config)
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as client:
        r = client.post(
            "/v1/chat/completions", json={"model": "greeter", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "HELLO FROM A PLUGIN"
        assert r.headers["x-interlock-provider"] == "canned"
    cfg.write_text(config.replace('text = "hello from a plugin"\n', ""))
    with pytest.raises(ConfigError, match=r"models\.greeter\.text: Field required"):
        create_app(load_settings(cfg, {}))
