"""`interlock keys list`: full ids however it is printed, `--json`, the status column; `create` validates as the API."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.cli.main import app

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _create(*args: str) -> str:
    found = re.search(r"\bkey_[0-9a-f]+\b", _ok("keys", "create", *args))
    assert found
    return found.group(0)


def _listed() -> list[dict]:  # type: ignore[type-arg]
    doc = json.loads(_ok("keys", "list", "--json"))
    assert doc["object"] == "list"
    return doc["data"]  # type: ignore[no-any-return]


def test_json_lists_every_key_with_its_status_and_no_secret(env: Path) -> None:
    active = _create("a", "-m", "echo", "--owner", "ana")
    revoked = _create("r")
    expired = _create("e", "--expires-in-days", "0.000000001")  # expires about 0.1 ms after creation
    suspended = _create("s")
    _ok("keys", "revoke", revoked)
    _ok("keys", "suspend", suspended, "--reason", "looping")
    keys = {k["id"]: k for k in _listed()}
    assert {i: k["status"] for i, k in keys.items()} == {
        active: "active",
        revoked: "revoked",
        expired: "expired",
        suspended: "suspended",
    }
    assert keys[active]["models"] == ["echo"] and keys[active]["owner"] == "ana"
    assert keys[suspended]["suspended_reason"] == "looping"
    assert all("hash" not in k and "key" not in k for k in keys.values())


def test_piped_list_has_full_ids_whatever_the_width(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "30")
    ids = {_create("first-app"), _create("second\tapp")}
    lines = _ok("keys", "list").splitlines()
    assert lines[0].split("\t") == ["id", "name", "owner", "team", "prefix", "models", "created", "expires", "status"]
    rows = [line.split("\t") for line in lines[1:]]
    assert {r[0] for r in rows} == ids == {k["id"] for k in _listed()}
    assert all(len(r) == 9 and r[-1] == "active" for r in rows)  # the name's tab did not add a column
    assert "…" not in "".join(lines)


def test_terminal_table_keeps_full_ids_on_a_narrow_terminal(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _create("narrow")
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then draws the table as on a terminal
    out = re.sub(r"\x1b\[[0-9;]*m", "", _ok("keys", "list"))
    assert "Virtual keys" in out and key in out


def test_unknown_model_is_refused_as_the_api_refuses_it(env: Path) -> None:
    result = runner.invoke(app, ["keys", "create", "x", "-m", "echo", "-m", "nonexistent"])
    assert result.exit_code == 1 and "unknown model(s) in 'models': nonexistent" in result.output
    assert _listed() == []
    assert runner.invoke(app, ["keys", "create", "x", "-m", "tag:local"]).exit_code == 0
