"""A multi-turn request routed through the gateway by a router trained on conversation rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from interlock.app import create_app
from interlock.cli.router import app as router_cli
from interlock.settings import load_settings
from tests.api.test_router_alias import CONFIG
from tests.conftest import ADMIN_KEY

pytestmark = [pytest.mark.model, pytest.mark.slow]  # trains on the packaged models' token tables

HISTORY = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hi! I have a few questions today."},
    {"role": "assistant", "content": "Sure, ask away."},
]


def _train(tmp_path: Path) -> Path:
    """Conversation rows in the feedback format: integrals need the strong model, fruit questions do not."""
    rows = []
    for i in range(40):
        hard = [*HISTORY, {"role": "user", "content": f"Integrate x^{i} dx from 0 to {i + 1}"}]
        easy = [*HISTORY, {"role": "user", "content": f"Name a fruit that is colour number {i}"}]
        rows += [
            {"messages": hard, "model": "cheap-model", "score": 0},
            {"messages": hard, "model": "strong-model", "score": 1},
        ]
        rows += [
            {"messages": easy, "model": "cheap-model", "score": 1},
            {"messages": easy, "model": "strong-model", "score": 1},
        ]
    data = tmp_path / "feedback.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    router = tmp_path / "router.json"
    result = CliRunner().invoke(router_cli, ["train", "--input", str(data), "--output", str(router)])
    assert result.exit_code == 0, result.output
    return router


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(router=_train(tmp_path), threshold=0.5))
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


def _chat(client: TestClient, messages: list[dict[str, str]]) -> str:
    r = client.post("/v1/chat/completions", json={"model": "auto", "messages": messages})
    assert r.status_code == 200, r.text
    return str(r.headers["x-interlock-model"])


def test_the_last_user_turn_decides_with_the_history_bounded(client: TestClient) -> None:
    long_easy = [{"role": "user", "content": "Name a fruit. " * 400}, {"role": "assistant", "content": "Apple. " * 400}]
    hard_last = [*HISTORY, *long_easy * 5, {"role": "user", "content": "Integrate x^7 dx from 0 to 3"}]
    easy_last = [
        *HISTORY,
        {"role": "user", "content": "Integrate x^5 dx from 0 to 2"},
        {"role": "assistant", "content": "64/6"},
        {"role": "user", "content": "Name a fruit that is colour number 7"},
    ]
    assert _chat(client, hard_last) == "strong"
    assert _chat(client, easy_last) == "cheap"
