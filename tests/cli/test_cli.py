"""The `interlock` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from interlock.cli.main import app
from tests.conftest import free_port, wait_http

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and result.stdout.startswith("interlock ")


def test_keys_create_list_revoke(env: Path) -> None:
    created = runner.invoke(app, ["keys", "create", "billing-app", "--owner", "ana", "-m", "echo"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("sk-il-")
    listed = runner.invoke(app, ["keys", "list"])
    assert "billing-app" in listed.stdout and "active" in listed.stdout and token not in listed.stdout
    key_id = next(w for w in listed.stdout.split() if w.startswith("key_"))
    assert runner.invoke(app, ["keys", "revoke", key_id]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["keys", "list"]).stdout
    again = runner.invoke(app, ["keys", "revoke", key_id])
    assert again.exit_code == 1


def test_models_table(env: Path) -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "echo-remote" in result.stdout and "vectors" in result.stdout and "config:" in result.stdout


def test_bad_config_exits_2_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'x'\n")
    result = runner.invoke(app, ["models", "--config", str(bad)])
    assert result.exit_code == 2 and "server.port" in result.output


def test_chat_and_spend_against_a_running_server(env: Path, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlock.cli.main", "serve", "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", 60, proc)
        result = runner.invoke(app, ["chat", "hello cli", "--model", "echo", "--url", f"http://127.0.0.1:{port}"])
        assert result.exit_code == 0, result.output
        assert "echo: hello cli" in result.stdout
        bad = runner.invoke(app, ["chat", "x", "--model", "nope", "--url", f"http://127.0.0.1:{port}"])
        assert bad.exit_code == 1 and "404" in bad.output
    finally:
        proc.terminate()
        proc.wait(15)
    spent = runner.invoke(app, ["spend", "--by", "model", "--json"])
    assert spent.exit_code == 0
    data = {row["group"]: row for row in json.loads(spent.stdout)["data"]}
    # 2 prompt tokens at $1.5/M + 3 completion tokens at $6/M = 3 + 18 micro-dollars
    assert data["echo"]["requests"] == 1 and data["echo"]["cost_micros"] == 21
    assert data["nope"]["errors"] == 1
    by_endpoint = runner.invoke(app, ["spend", "--by", "endpoint", "--endpoint", "chat", "--json"])
    assert [(r["group"], r["requests"]) for r in json.loads(by_endpoint.stdout)["data"]] == [("chat", 2)]
    none = runner.invoke(app, ["spend", "--endpoint", "mcp", "--json"])
    assert none.exit_code == 0 and json.loads(none.stdout)["data"] == []
    bad = runner.invoke(app, ["spend", "--endpoint", "chat completions"])
    assert bad.exit_code != 0 and "comma" in bad.output
    typo = runner.invoke(app, ["spend", "--endpoint", "chats"])
    assert typo.exit_code != 0 and "unknown endpoint chats" in typo.output
    mixed = runner.invoke(app, ["spend", "--endpoint", "chat", "--export", "csv"])
    assert mixed.exit_code != 0 and "--export" in mixed.output
    table = runner.invoke(app, ["spend", "--by", "day"])
    assert table.exit_code == 0 and "total" in table.stdout
    assert "the same traffic on gpt-4o would have cost" in table.stdout and "saved" in table.stdout
    assert json.loads(spent.stdout)["summary"]["reference_cost_micros"] > 0
