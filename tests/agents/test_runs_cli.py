"""`interlock agents create` with per-run caps: they are stored on the agent and shown with it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from interlock.cli.main import app

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_an_agent_is_created_with_run_caps(env: Path) -> None:
    owner = json.loads(_ok("owners", "create", "Ann Owner", "ann@example.com"))
    out = _ok(
        "agents", "create", "research-bot", "--owner", owner["id"], "--description", "searches",
        "--max-steps", "30", "--max-spend-usd", "0.5", "--max-tokens", "200000", "--max-seconds", "600",
        "--loop-cycles", "0",
    )  # fmt: skip
    agent_id = re.search(r"\bagt_[0-9a-f]+\b", out)
    assert agent_id
    caps = json.loads(_ok("agents", "show", agent_id.group(0)))["caps"]
    assert caps["max_steps"] == 30 and caps["max_spend_micros"] == 500_000 and caps["max_tokens"] == 200_000
    assert caps["max_seconds"] == 600 and caps["loop_cycles"] == 0 and caps["loop_repeats"] == 3


def test_a_bad_cap_is_refused_naming_it(env: Path) -> None:
    owner = json.loads(_ok("owners", "create", "Bo", "bo@example.com"))
    result = runner.invoke(
        app, ["agents", "create", "x", "--owner", owner["id"], "--description", "d", "--max-steps", "0"]
    )
    assert result.exit_code == 2 and "max_steps" in result.output


def test_an_agents_caps_are_replaced(env: Path) -> None:
    owner = json.loads(_ok("owners", "create", "Cy", "cy@example.com"))
    out = _ok("agents", "create", "bot", "--owner", owner["id"], "--description", "d", "--max-steps", "5")
    agent_id = re.search(r"\bagt_[0-9a-f]+\b", out)
    assert agent_id
    shown = json.loads(_ok("agents", "caps", agent_id.group(0), "--max-tokens", "1000", "--loop-repeats", "4"))
    assert shown["caps"]["max_tokens"] == 1000 and shown["caps"]["max_steps"] is None
    assert shown["caps"]["loop_repeats"] == 4
