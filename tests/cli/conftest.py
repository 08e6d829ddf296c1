"""The command line's environment: a config with fake models and a temp INTERLOCK_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ADMIN_KEY, FAKE_CONFIG


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """INTERLOCK_CONFIG, INTERLOCK_HOME (tmp_path/home) and a wide terminal; returns the config file."""
    config = tmp_path / "c.toml"
    config.write_text(FAKE_CONFIG)
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INTERLOCK_CONFIG", str(config))
    monkeypatch.setenv("INTERLOCK_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("COLUMNS", "200")
    return config
