"""Router labels from captures and feedback: rows `interlock router train` reads, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from interlock.cli.main import app as cli
from interlock.flywheel.labels import score_of
from interlock.routing.router.data import load_labelled
from interlock.settings import FlywheelMetric
from tests.flywheel.conftest import Captures, chat


def test_scores_are_in_zero_one() -> None:
    assert score_of(FlywheelMetric(name="ok", type="boolean"), 1.0) == 1.0
    assert score_of(FlywheelMetric(name="ok", type="boolean"), 0.0) == 0.0
    stars = FlywheelMetric(name="stars", type="float", min=1, max=5)
    assert score_of(stars, 5) == 1.0 and score_of(stars, 3) == 0.5 and score_of(stars, 9) == 1.0
    assert score_of(FlywheelMetric(name="raw", type="float"), 0.7) == 0.7
    assert score_of(FlywheelMetric(name="raw", type="float"), 7.0) is None


def test_captured_requests_with_feedback_become_router_rows(
    client: TestClient, captures: Captures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rated = [chat(client, f"capital of country {i}?") for i in range(3)]
    chat(client, "never rated")
    for request_id, value in zip(rated, (True, False, True), strict=True):
        r = client.post("/v1/feedback", json={"request_id": request_id, "metric": "correct", "value": value})
        assert r.status_code == 201, r.text
    client.post("/v1/feedback", json={"request_id": rated[1], "metric": "correct", "value": True})  # the latest wins
    assert len(captures()) == 4

    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "home"))
    out = tmp_path / "rows.jsonl"
    config = str(tmp_path / "interlock.toml")
    result = CliRunner().invoke(cli, ["router", "labels", "--metric", "correct", "-o", str(out), "--config", config])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["messages"][-1]["content"], r["model"], r["score"], r["group"]) for r in rows) == [
        (f"capital of country {i}?", "echo", 1.0, "echo") for i in range(3)
    ]
    labelled = load_labelled([out])  # what `interlock router train --input` reads
    assert labelled.models == ("echo",) and len(labelled.prompts) == 3

    bad = CliRunner().invoke(cli, ["router", "labels", "--metric", "nope", "-o", str(out), "--config", config])
    assert bad.exit_code == 2 and "not declared" in bad.output  # a usage error, as the other router commands
