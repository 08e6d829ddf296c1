"""`interlock mcp servers` and `interlock mcp approve`: the command connects to the upstreams itself."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from interlock.audit.stores import open_audit_store
from interlock.cli.main import app
from interlock.settings import load_settings
from tests.cli.conftest import env as env

runner = CliRunner()


def _servers(env: Path) -> dict[str, Any]:
    result = runner.invoke(app, ["mcp", "servers"])
    assert result.exit_code == 0, result.output
    return {s["name"]: s for s in json.loads(result.stdout)}


def test_servers_are_listed_then_approved_and_a_flagged_or_broken_one_is_not(env: Path) -> None:
    py = json.dumps(sys.executable)
    with env.open("a") as f:
        f.write(
            f'\n[[mcp.servers]]\nname = "bank"\ncommand = {py}\nargs = ["-m", "interlock.testing.mcp_server"]\n'
            f'env = {{ TEST_MCP_TOKEN = "hush-7d1" }}\n'
            f'\n[[mcp.servers]]\nname = "shady"\ncommand = {py}\nargs = ["-m", "interlock.testing.mcp_server"]\n'
            'env = { TEST_MCP_POISONED = "1" }\n'
            f'\n[[mcp.servers]]\nname = "broken"\ncommand = {py}\nargs = ["-c", "pass"]\n'  # exits at once
        )
    listed = _servers(env)
    assert listed["bank"]["connected"] and {t["status"] for t in listed["bank"]["tools"]} == {"unapproved"}
    assert listed["shady"]["flagged"] and not listed["bank"]["flagged"]
    assert not listed["broken"]["connected"] and listed["broken"]["error"] and listed["broken"]["tools"] == []
    down = runner.invoke(app, ["mcp", "approve", "broken"])
    assert down.exit_code == 1 and "did not list its tools" in down.output
    ok = runner.invoke(app, ["mcp", "approve", "bank"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["approved"] == [
        "prompt:triage",
        "read_inbox",
        "resource:mail://inbox/count",
        "resource:mail://inbox/newest",
        "send_money",
        "template:notes://{name}",
        "whoami",
    ]
    refused = runner.invoke(app, ["mcp", "approve", "shady"])
    assert refused.exit_code == 1 and "fetch_notes" in refused.output and "force" in refused.output
    forced = runner.invoke(app, ["mcp", "approve", "shady", "--force"])
    assert forced.exit_code == 0, forced.output
    after = _servers(env)
    assert {t["status"] for t in after["bank"]["tools"]} == {"approved"}
    notes = next(t for t in after["shady"]["tools"] if t["tool"] == "fetch_notes")
    assert notes["status"] == "approved" and notes["forced"] is True
    assert "hush-7d1" not in json.dumps(after)
    store = open_audit_store(load_settings(env))
    store.open()
    try:
        approvals = [e for e in store.recent(50) if e.action == "mcp.approve"]
    finally:
        store.close()
    assert [(e.target, e.metadata_dict()["forced"]) for e in approvals] == [("shady", True), ("bank", False)]
    assert all(e.actor_name.startswith("cli:") for e in approvals)
