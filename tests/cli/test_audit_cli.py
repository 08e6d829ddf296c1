"""`interlock audit verify|list` against a real log under a temp INTERLOCK_HOME."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.audit.log import AuditEvent, AuditLog
from interlock.audit.sqlite_store import SqliteAuditStore
from interlock.cli.main import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("INTERLOCK_HOME", str(home))
    monkeypatch.delenv("INTERLOCK_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    async def build() -> None:
        log = AuditLog(SqliteAuditStore(home / "interlock.db"), home, checkpoint_every=4)
        await log.open()
        await log.append(AuditEvent.admin("key.create", actor_id=None, actor_name="admin", target="key_abc"))
        for i in range(9):
            await log.append(
                AuditEvent.denial("chat.completions", actor_id="key_abc", actor_name="app", reason="over budget", n=i)
            )
        await log.close()

    asyncio.run(build())
    return home


def test_verify_an_intact_log(home: Path) -> None:
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "intact" in result.stdout and "10 entries" in result.stdout
    data = json.loads(runner.invoke(app, ["audit", "verify", "--json"]).stdout)
    assert data["ok"] is True and data["entries"] == 10 and data["unsigned"] == 0


def test_verify_names_the_first_bad_entry(home: Path) -> None:
    conn = sqlite3.connect(home / "interlock.db", isolation_level=None)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET reason = 'allowed' WHERE seq = 6")
    conn.close()
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1 and "TAMPERED at entry 6" in result.stdout
    data = json.loads(runner.invoke(app, ["audit", "verify", "--json"]).stdout)
    assert data["ok"] is False and data["first_bad_seq"] == 6 and "hash" in data["reason"]


def test_list_shows_the_newest_entries(home: Path) -> None:
    result = runner.invoke(app, ["audit", "list", "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert "over budget" in result.stdout and "n=8" in result.stdout and "key.create" not in result.stdout
