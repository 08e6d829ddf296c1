"""POST /v1/feedback and `interlock feedback`: declared metrics only, on the caller's own requests and runs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from interlock.cli.main import app as cli
from interlock.settings import ConfigError, load_settings
from tests.flywheel.conftest import chat, new_key


def _give(client: TestClient, token: str | None = None, **body: Any) -> tuple[int, dict[str, Any]]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    r = client.post("/v1/feedback", json=body, headers=headers)
    return r.status_code, r.json()


def _audit(tmp_path: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(tmp_path / "home" / "interlock.db")
    try:
        rows = db.execute("SELECT target, metadata FROM audit WHERE action = 'feedback.record' ORDER BY seq").fetchall()
    finally:
        db.close()
    return [{"target": t, **json.loads(m)} for t, m in rows]


def test_feedback_on_an_own_request_is_stored_and_audited_without_its_text(tmp_path: Path, client: TestClient) -> None:
    _, token = new_key(client)
    rid = chat(client, "2 + 2?", token=token)
    status, body = _give(
        client, token, request_id=rid, metric="quality", value=0.75, comment="close", demonstration="4, secret note"
    )
    assert status == 201, body
    assert body["object"] == "feedback" and body["request_id"] == rid and body["value"] == 0.75
    status, body = _give(client, token, request_id=rid, metric="correct", value=False)
    assert status == 201 and body["value"] == 0.0
    store = client.app.state.interlock.store  # type: ignore[attr-defined]
    stored = client.portal.call(store.list_feedback)  # type: ignore[union-attr]
    assert [(f.metric, f.value, f.demonstration) for f in stored] == [
        ("quality", 0.75, "4, secret note"),
        ("correct", 0.0, ""),
    ]
    entries = _audit(tmp_path)
    assert [(e["target"], e["metric"], e["value"]) for e in entries] == [(rid, "quality", 0.75), (rid, "correct", 0.0)]
    assert "secret note" not in json.dumps(entries) and "close" not in json.dumps(entries)


def test_an_undeclared_metric_is_a_400_naming_the_declared_ones(client: TestClient) -> None:
    rid = chat(client, "hi")
    status, body = _give(client, request_id=rid, metric="helpfulness", value=1)
    assert status == 400
    message = body["error"]["message"]
    assert "helpfulness" in message and "correct (boolean)" in message and "quality (float)" in message
    assert body["error"]["param"] == "metric"


@pytest.mark.parametrize(
    ("metric", "value", "words"),
    [
        ("correct", 1, "give true or false"),
        ("quality", True, "give a number"),
        ("quality", 1.5, "from 0 to 1"),
        ("quality", "0.5", "value"),
    ],
)
def test_a_value_of_the_wrong_type_or_range_is_a_400(client: TestClient, metric: str, value: Any, words: str) -> None:
    rid = chat(client, "hi")
    status, body = _give(client, request_id=rid, metric=metric, value=value)
    assert status == 400 and words in body["error"]["message"], body


@pytest.mark.parametrize(
    "body",
    [
        {"metric": "correct", "value": True},
        {"request_id": "a", "run_id": "b", "metric": "correct", "value": True},
        {"request_id": "req 1", "metric": "correct", "value": True},
        {"request_id": "r", "metric": "correct", "value": True, "extra": 1},
    ],
)
def test_a_malformed_body_is_a_400(client: TestClient, body: dict[str, Any]) -> None:
    status, _ = _give(client, **body)
    assert status == 400


def test_a_key_gives_feedback_only_on_its_own_requests_the_admin_on_any(client: TestClient) -> None:
    _, token_a = new_key(client, "a")
    _, token_b = new_key(client, "b")
    rid = chat(client, "mine", token=token_a)
    status, body = _give(client, token_b, request_id=rid, metric="correct", value=True)
    assert status == 404 and "this key has no request" in body["error"]["message"]
    assert _give(client, token_a, request_id=rid, metric="correct", value=True)[0] == 201
    assert _give(client, request_id=rid, metric="correct", value=True)[0] == 201  # the admin key
    status, body = _give(client, request_id="req_nope", metric="correct", value=True)
    assert status == 404 and "no request 'req_nope'" in body["error"]["message"]
    assert _give(client, "sk-il-nope", request_id=rid, metric="correct", value=True)[0] == 401


def test_feedback_on_a_run(client: TestClient) -> None:
    _, token = new_key(client)
    r = client.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "step"}]},
        headers={"authorization": f"Bearer {token}", "x-interlock-run-id": "run-9"},
    )
    assert r.status_code == 200
    status, body = _give(client, token, run_id="run-9", metric="quality", value=1)
    assert status == 201 and body["run_id"] == "run-9"
    assert _give(client, token, run_id="run-10", metric="quality", value=1)[0] == 404


def test_the_cli_gives_feedback_as_the_admin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: TestClient
) -> None:
    rid = chat(client, "hello")
    client.portal.call(client.app.state.interlock.store.flush)  # type: ignore[attr-defined]
    monkeypatch.setenv("INTERLOCK_CONFIG", str(tmp_path / "interlock.toml"))
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    out = runner.invoke(cli, ["feedback", rid, "correct", "true", "--demonstration", "Hello!"])
    assert out.exit_code == 0 and f"correct = 1 on request {rid}" in out.output, out.output
    out = runner.invoke(cli, ["feedback", rid, "nope", "1"])
    assert out.exit_code == 1 and "not declared" in out.output
    store = client.app.state.interlock.store  # type: ignore[attr-defined]
    assert [f.demonstration for f in client.portal.call(store.list_feedback)] == ["Hello!"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        (
            '[[flywheel.metrics]]\nname = "a"\ntype = "boolean"\n[[flywheel.metrics]]\nname = "a"\ntype = "float"\n',
            "once",
        ),
        ('[[flywheel.metrics]]\nname = "a"\ntype = "boolean"\nmin = 0\n', "no min or max"),
        ('[[flywheel.metrics]]\nname = "a"\ntype = "float"\nmin = 2\nmax = 1\n', "min is above max"),
        ('[[flywheel.metrics]]\nname = "a b"\ntype = "float"\n', "name"),
        ("[flywheel.capture]\nretention_days = 0\n", "retention_days"),
    ],
)
def test_bad_flywheel_config_is_refused_with_the_reason(tmp_path: Path, toml: str, words: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=words):
        load_settings(config, {})
