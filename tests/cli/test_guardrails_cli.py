"""`interlock guardrails set|list|delete|scan`."""

from __future__ import annotations

import getpass
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from interlock.cli.main import app

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_set_list_delete_are_audited(env: Path) -> None:
    code, out = _run(
        "guardrails",
        "set",
        "model",
        "echo",
        "--input",
        "EMAIL_ADDRESS=block",
        "--keyword",
        "CODENAME=bluebird,nightjar",
    )
    assert code == 0, out
    assert '"EMAIL_ADDRESS": "block"' in out and '"CODENAME": ["bluebird", "nightjar"]' in out
    code, out = _run("guardrails", "list")
    assert code == 0 and "echo" in out and "CODENAME" in out
    code, out = _run("guardrails", "delete", "model", "echo")
    assert code == 0 and "Removed" in out
    assert "echo" not in _run("guardrails", "list")[1]
    db = sqlite3.connect(env.parent / "home" / "interlock.db")
    try:
        actions = [a for (a,) in db.execute("SELECT action FROM audit ORDER BY seq") if a.startswith("guardrail")]
        actors = {n for (n,) in db.execute("SELECT actor_name FROM audit WHERE action LIKE 'guardrail.%'")}
    finally:
        db.close()
    assert actions == ["guardrail.set", "guardrail.delete"] and actors == {f"cli:{getpass.getuser()}"}


def test_refusals_name_the_problem(env: Path) -> None:
    cases = [
        (["guardrails", "set", "model", "echo", "--input", "EMAIL_ADDRESS=shred"], "rules.input.EMAIL_ADDRESS"),
        (["guardrails", "set", "model", "echo", "--input", "nonsense"], "takes NAME=VALUE"),
        (["guardrails", "set", "model", "nope", "--input", "EMAIL_ADDRESS=log"], "no model with id 'nope'"),
        (["guardrails", "set", "model", "echo", "--pattern", "ID=(a+)+$"], "backtracks catastrophically"),
        (["guardrails", "delete", "team", "team_nope"], "no guardrail policy"),
    ]
    for args, message in cases:
        code, out = _run(*args)
        assert code != 0 and message in out.replace("\n", " "), (args, out)


def test_scan_shows_types_and_actions_not_values(env: Path) -> None:
    code, out = _run("guardrails", "scan", "mail jane.doe@example.com or card 4111 1111 1111 1111")
    assert code == 0, out
    assert "EMAIL_ADDRESS" in out and "CREDIT_CARD" in out and "restrict" in out
    assert "jane.doe" not in out and "4111" not in out
