"""What the agents' tests share: the app on the fake config as the admin sees it, an agent's principal,
and the Redis they use (`conftest.prefix` gives each test its own key prefix there)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.plugins.hooks import Hook
from interlock.settings import load_settings
from tests.conftest import ADMIN_KEY, FAKE_CONFIG


def admin_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str = "", hooks: Sequence[Hook[Any]] = ()
) -> TestClient:
    """The app on the fake config plus `extra` TOML (and `hooks`), with the admin key; enter it to start it."""
    config = tmp_path / "interlock.toml"
    config.write_text(FAKE_CONFIG + extra)
    settings = load_settings(config, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    monkeypatch.setenv("INTERLOCK_ADMIN_KEY", ADMIN_KEY)
    app = create_app(settings, hooks=list(hooks)) if hooks else create_app(settings)
    return TestClient(app, headers={"authorization": f"Bearer {ADMIN_KEY}"})


@dataclass
class AgentPrincipal:
    """The caller an agents hook sees: agent `agt_1` of owner `own_1`, by default."""

    key_id: str | None = "key_1"
    name: str = "agent:bot"
    is_admin: bool = False
    team_id: str | None = None
    org_id: str | None = None
    agent_id: str | None = "agt_1"
    owner_id: str | None = "own_1"
