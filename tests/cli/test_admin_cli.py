"""`interlock keys|orgs|teams|budgets|limits`: the admin services from the command line, audited as cli:<user>."""

from __future__ import annotations

import getpass
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.cli.main import app

runner = CliRunner()


@pytest.fixture
def home(env: Path) -> Path:
    """The INTERLOCK_HOME the commands use."""
    return env.parent / "home"


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _id(prefix: str, text: str) -> str:
    found = re.search(rf"\b{prefix}_[0-9a-f]+\b", text)
    assert found, text
    return found.group(0)


def _audit(home: Path) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(home / "interlock.db")
    try:
        return list(db.execute("SELECT action, target, actor_name FROM audit ORDER BY seq"))
    finally:
        db.close()


def test_the_hierarchy_budgets_and_limits(home: Path) -> None:
    org = _id("org", _ok("orgs", "create", "acme"))
    team = _id("team", _ok("teams", "create", "search", "--org", org))
    assert "acme" in _ok("orgs", "list") and org in _ok("teams", "list")
    created = _ok("keys", "create", "svc", "--team", team, "-m", "echo")
    key = _id("key", created)
    assert team in _ok("keys", "list")
    assert "$0.500000 per day" in _ok("budgets", "set", "team", team, "--usd", "0.5", "--period", "day")
    listed = _ok("budgets", "list")
    assert team in listed and "$0.500000" in listed
    _ok("limits", "set", "key", key, "--rpm", "3")
    assert "3" in _ok("limits", "list")
    _ok("limits", "delete", "key", key)
    _ok("budgets", "delete", "team", team, "--period", "day")
    assert team not in _ok("budgets", "list")
    actor = f"cli:{getpass.getuser()}"
    assert _audit(home) == [
        ("org.create", org, actor),
        ("team.create", team, actor),
        ("key.create", key, actor),
        ("budget.set", f"team:{team}", actor),
        ("rate_limit.set", f"key:{key}", actor),
        ("rate_limit.delete", f"key:{key}", actor),
        ("budget.delete", f"team:{team}", actor),
    ]


def test_suspend_and_resume(home: Path) -> None:
    key = _id("key", _ok("keys", "create", "agent"))
    _ok("keys", "suspend", key, "--reason", "looping")
    assert "suspended" in _ok("keys", "list")
    _ok("keys", "resume", key)
    assert "active" in _ok("keys", "list")


def test_refusals_name_the_problem(home: Path) -> None:
    for args, code, text in [
        (["keys", "create", "x", "-m", "nope"], 1, "unknown model(s) in 'models': nope"),
        (["keys", "create", "x", "--team", "team_nope"], 1, "no team with id 'team_nope'"),
        (["keys", "create", "x", "--cache-ttl", "-1"], 2, "cache_ttl_s"),
        (["teams", "create", "x", "--org", "org_nope"], 1, "no organisation with id 'org_nope'"),
        (["budgets", "set", "key", "key_nope", "--usd", "1"], 1, "no key with id 'key_nope'"),
        (["budgets", "delete", "key", "key_nope"], 1, "no such budget"),
        (["limits", "set", "model", "echo"], 1, "set 'rpm', 'tpm', 'max_concurrent' or several"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == code and text in result.output, (args, result.output)
    assert runner.invoke(app, ["orgs", "create", "acme"]).exit_code == 0
    again = runner.invoke(app, ["orgs", "create", "acme"])
    assert again.exit_code == 1 and "exists" in again.output
    assert [a for a, _, _ in _audit(home)] == ["org.create"]


def test_reads_leave_no_audit_log_behind(home: Path) -> None:
    _ok("keys", "list")
    _ok("budgets", "list")
    _ok("spend", "--json")
    assert not (home / "audit_head.json").exists()
    _ok("orgs", "create", "acme")
    assert (home / "audit_head.json").exists()
