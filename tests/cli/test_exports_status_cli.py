"""`interlock spend --export|--roi`, `interlock audit export` and `interlock status`, against a seeded store."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
import time
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from interlock.audit.chain import canonical
from interlock.cli.main import app
from interlock.store.approval_queries import ApprovalRecord
from interlock.store.outcome_queries import OutcomeRecord
from interlock.store.records import UsageRecord
from interlock.store.sqlite import SqliteStore

runner = CliRunner()
T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def _row(i: int, ts: float, cost: int, run: str = "", key: str = "key_1") -> UsageRecord:
    return UsageRecord(
        request_id=f"req_{i:032x}", ts=ts, key_id=key, endpoint="chat", alias="echo", provider="fake",
        upstream_model="echo", stream=False, prompt_tokens=3, completion_tokens=2, usage_source="provider",
        cost_micros=cost, price_version="config", latency_ms=1.0, ttft_ms=None, status=200, run_id=run,
        reference_cost_micros=cost * 10,
    )  # fmt: skip


def _seed(home: Path, rows: list[UsageRecord], outcomes: list[OutcomeRecord] = ()) -> None:  # type: ignore[assignment]
    async def go() -> None:
        store = SqliteStore(home / "interlock.db", flush_interval_ms=5)
        await store.open()
        for r in rows:
            store.record_usage(r)
        await store.flush()
        for o in outcomes:
            await store.upsert_outcome(o)
        await store.close()

    asyncio.run(go())


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def home(env: Path) -> Path:
    return env.parent / "home"


def test_the_ledger_exports_as_csv_and_jsonl_with_since(home: Path) -> None:
    _seed(home, [_row(i, T0 + i, 10 * i, run="run-1" if i % 2 else "") for i in range(5)])
    rows = list(csv.DictReader(io.StringIO(_ok("spend", "--export", "csv"))))
    assert [r["request_id"] for r in rows] == [f"req_{i:032x}" for i in range(5)]  # oldest first
    assert rows[3]["cost_micros"] == "30" and rows[3]["run_id"] == "run-1" and rows[0]["error"] == ""
    lines = _ok("spend", "--export", "jsonl", "--since", str(T0 + 3)).splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["cost_micros"] for r in records] == [30, 40]
    assert records[0]["run_id"] == "run-1" and records[0]["ttft_ms"] is None
    assert runner.invoke(app, ["spend", "--export", "xml"]).exit_code == 2


def test_roi_by_task_type(home: Path, env: Path) -> None:
    env.write_text(env.read_text() + "\n[roi.task_types.invoice]\nminutes = 30\nhourly_usd = 40\n")
    now = time.time()
    _seed(
        home,
        [_row(1, now, 400_000, run="a"), _row(2, now, 100_000, run="b")],
        [
            OutcomeRecord("key_1", "run", "a", "invoice", "completed", None, None, now, now),
            OutcomeRecord("key_1", "run", "b", "invoice", "failed", None, None, now, now),
        ],
    )
    data = json.loads(_ok("spend", "--roi", "--json"))
    (row,) = data["data"]
    assert (row["completed"], row["failed"], row["cost_micros"]) == (1, 1, 500_000)
    assert row["labour_value_micros"] == 20_000_000 and row["roi"] == 39.0  # ($20 - $0.50) / $0.50
    table = _ok("spend", "--roi")
    assert "invoice" in table and "$20.00" in table and "3,900%" in table
    assert runner.invoke(app, ["spend", "--roi", "--by", "day"]).exit_code == 1


def test_audit_export_is_jsonl_whose_hashes_recompute(home: Path) -> None:
    _ok("orgs", "create", "acme")
    _ok("orgs", "create", "globex")
    lines = _ok("audit", "export").splitlines()
    entries = [orjson.loads(line) for line in lines]
    assert len([e for e in entries if e["action"] == "org.create"]) == 2
    prev = "0" * 64
    for e in entries:
        # what a SIEM can check without Interlock: the chain, from the fields exported
        fields = {k: e[k] for k in ("seq", "ts", "actor_id", "actor_name", "action", "target", "decision", "reason")}
        fields |= {"v": 1, "metadata": canonical(e["metadata"]).decode(), "prev": prev}
        assert e["prev_hash"] == prev and hashlib.sha256(canonical(fields)).hexdigest() == e["hash"]
        assert e["metadata_json"] == fields["metadata"]
        prev = e["hash"]
    later = _ok("audit", "export", "--since", str(entries[-1]["ts"])).splitlines()
    assert 1 <= len(later) < len(entries)


def test_status_shows_models_budgets_spend_and_the_audit_check(home: Path) -> None:
    found = re.search(r"\bkey_[0-9a-f]+\b", _ok("keys", "create", "app"))
    assert found
    key = found.group(0)
    _seed(home, [_row(1, time.time(), 900_000, key=key)])
    _ok("budgets", "set", "key", key, "--usd", "1", "--period", "day")
    out = _ok("status", "--url", "http://127.0.0.1:9")  # nothing listens there
    assert "not running" in out and "echo-remote" in out and "vectors" in out
    assert "Spend today: $0.900000 over 1 requests" in out
    assert f"key {key}" in out and "90%" in out
    assert "Audit log intact" in out
    assert "Pending approvals: none" in out

    async def hold() -> None:  # one held call waiting, one whose request expired
        store = SqliteStore(home / "interlock.db", flush_interval_ms=5)
        await store.open()
        now = time.time()
        for i, expires in enumerate((now + 3600, now - 1)):
            await store.insert_approval(
                ApprovalRecord(f"apr_{i}", "agt_1", "own_1", "", "send_money", "h", "{}", "approval_required",
                               f"req_{i}", "pending", now - 10, expires)
            )  # fmt: skip
        await store.close()

    asyncio.run(hold())
    assert "Pending approvals: 1 " in _ok("status", "--url", "http://127.0.0.1:9")
