"""`interlock owners|agents|halt|resume`: register, show, halt and resume through the admin services."""

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


def test_an_agent_is_registered_shown_halted_and_resumed(env: Path) -> None:
    owner = json.loads(_ok("owners", "create", "Ann Owner", "ann@example.com"))
    out = _ok("agents", "create", "inbox-bot", "--owner", owner["id"], "--description", "sorts mail", "-t", "mail_*")
    agent_id = re.search(r"\bagt_[0-9a-f]+\b", out)
    assert agent_id and "sk-il-" in out
    shown = json.loads(_ok("agents", "show", agent_id.group(0)))
    assert shown["owner_id"] == owner["id"] and shown["policy"]["allow"] == ["mail_*"]
    assert shown["keys"][0]["agent_id"] == agent_id.group(0)
    halted = json.loads(_ok("halt", "agent", agent_id.group(0), "--reason", "drill"))
    assert halted["scope"] == "agent" and halted["reason"] == "drill"
    assert "resumed agent" in _ok("resume", "agent", agent_id.group(0))
    missing = runner.invoke(app, ["resume", "agent", agent_id.group(0)])
    assert missing.exit_code != 0 and "no halt" in missing.output


def test_an_agent_needs_a_description(env: Path) -> None:
    owner = json.loads(_ok("owners", "create", "Bo", "bo@example.com"))
    result = runner.invoke(app, ["agents", "create", "x", "--owner", owner["id"], "--description", ""])
    assert result.exit_code == 2
