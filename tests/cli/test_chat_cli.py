"""`interlock chat` when no gateway answers: a message that says what to do, and exit code 1."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from interlock.cli.main import app
from tests.conftest import free_port

runner = CliRunner()


def test_no_gateway_gets_a_clear_message_and_exit_1(env: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = runner.invoke(app, ["chat", "hello", "--model", "echo", "--url", url + "/"])
    assert result.exit_code == 1
    said = " ".join(result.output.split())  # rich wraps long lines
    assert f"no Interlock gateway answers at {url}: start one with `make run` or `interlock serve`" in said
    assert "Errno" not in said


def test_interactive_session_without_gateway_fails_the_same_way(env: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["chat", "--url", url], input="hi\n")
    assert result.exit_code == 1 and "no Interlock gateway answers at" in result.output
