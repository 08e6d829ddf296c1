"""The flywheel's queries on both stores: captures (insert, list, window, erase, prune), feedback, datasets, evals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.store.flywheel_queries import (
    CaptureRecord,
    DatasetRecord,
    DatasetRow,
    EvalRecord,
    EvalResult,
    FeedbackRecord,
)
from interlock.store.postgres import PostgresStore
from interlock.store.records import UsageRecord
from interlock.store.sqlite import SqliteStore
from tests.store.conftest import pg_url  # noqa: F401  (the fixture)

Store = SqliteStore | PostgresStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An open store of each kind."""
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "db.sqlite", flush_interval_ms=5)
    else:
        s = PostgresStore(request.getfixturevalue("pg_url"), flush_interval_ms=5)
    s.open_sync()
    try:
        yield s
    finally:
        s.close_sync()


def capture(
    rid: str, ts: float, *, key: str = "key_a", subject: str = "", alias: str = "echo", size: int = 100
) -> CaptureRecord:
    request = json.dumps({"messages": [{"role": "user", "content": f"prompt {rid}"}]})
    response = json.dumps({"role": "assistant", "content": f"answer {rid}"})
    return CaptureRecord(
        rid,
        ts,
        key,
        "",
        "",
        "",
        subject,
        "",
        "chat",
        alias,
        "echo-1",
        "fake",
        "",
        request,
        response,
        3,
        4,
        10,
        1.5,
        "h" + rid,
        size,
    )


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_captures_round_trip_and_windows(store: Store) -> None:
    rows = [capture("r1", 100.0), capture("r2", 200.0, alias="other"), capture("r3", 300.0, key="key_b")]
    run(store.insert_captures(rows))
    run(store.insert_captures(rows[:1]))  # a repeat is skipped
    assert run(store.list_captures()) == rows[::-1]
    assert [c.request_id for c in run(store.list_captures(key_id="key_b"))] == ["r3"]
    assert [c.request_id for c in run(store.captures_between(150.0, None))] == ["r2", "r3"]
    assert [c.request_id for c in run(store.captures_between(None, 300.0, ["echo"]))] == ["r1"]
    assert [c.request_id for c in run(store.captures_between(None, None, variant=""))] == ["r1", "r2", "r3"]


def test_erase_reaches_feedback_and_dataset_rows(store: Store) -> None:
    run(store.insert_captures([capture("r1", 1.0, subject="s1"), capture("r2", 2.0), capture("r3", 3.0, key="key_b")]))
    for rid in ("r1", "r2", "r3"):
        run(store.insert_feedback(FeedbackRecord("request", rid, "key_a", "correct", 1.0, "", "", 1.0, "t")))
    d = DatasetRecord("ds", 1, 1.0, "t", "{}", 2, 0, "h")
    run(store.insert_dataset(d, [DatasetRow(0, "train", "{}", "r1"), DatasetRow(1, "train", "{}", "r2")]))
    erased = run(store.erase_captures(subject="s1"))
    assert (erased.captures, erased.feedback, erased.dataset_rows) == (1, 1, 1)
    erased = run(store.erase_captures(key_id="key_b"))
    assert (erased.captures, erased.feedback) == (1, 1)
    erased = run(store.erase_captures(request_id="r2"))
    assert (erased.captures, erased.feedback, erased.dataset_rows) == (1, 1, 1)
    assert run(store.list_captures()) == [] and run(store.list_feedback()) == []
    assert run(store.dataset_rows("ds", 1)) == []
    with pytest.raises(ValueError, match="exactly one"):
        run(store.erase_captures())


def test_prune_by_age_and_by_total_size(store: Store) -> None:
    run(store.insert_captures([capture(f"r{i}", float(i), size=100) for i in range(1, 7)]))
    assert run(store.prune_captures(before=3.0, max_bytes=10_000)) == 2  # r1, r2
    assert run(store.prune_captures(before=0.0, max_bytes=250)) == 2  # the oldest past 250 bytes: r3, r4
    assert [c.request_id for c in run(store.list_captures())] == ["r6", "r5"]


def test_feedback_ownership_lookup_reads_the_ledger(store: Store) -> None:
    row = UsageRecord(
        request_id="req_1", ts=1.0, key_id="key_a", endpoint="chat", alias="echo", provider="fake", deployment="d",
        attempts=1, upstream_model="m", stream=False, prompt_tokens=1, completion_tokens=1, usage_source="provider",
        cost_micros=1, price_version="p", latency_ms=1.0, ttft_ms=None, status=200, error=None, team_id=None,
        org_id=None, reference_cost_micros=0, run_id="run-1",
    )  # fmt: skip
    store.record_usage(row)
    run(store.flush())
    assert run(store.usage_exists("request", "req_1")) == "key_a"
    assert run(store.usage_exists("run", "run-1")) == "key_a"
    assert run(store.usage_exists("request", "req_2")) is None
    assert run(store.usage_exists("run", "")) is None
    first = run(store.insert_feedback(FeedbackRecord("run", "run-1", "key_a", "q", 0.5, "c", "d", 2.0, "t")))
    second = run(store.insert_feedback(FeedbackRecord("request", "req_1", "key_a", "q", 1.0, "", "", 3.0, "t")))
    assert second > first
    assert [(f.kind, f.value, f.id) for f in run(store.list_feedback())] == [
        ("run", 0.5, first),
        ("request", 1.0, second),
    ]


def test_datasets_and_evals(store: Store) -> None:
    rows = [DatasetRow(i, "eval" if i % 2 else "train", json.dumps({"i": i}), f"r{i}") for i in range(250)]
    v1 = DatasetRecord("ds", 1, 1.0, "t", '{"from": "import"}', 125, 125, "abc")
    run(store.insert_dataset(v1, rows))
    run(store.insert_dataset(DatasetRecord("ds", 2, 2.0, "t", "{}", 0, 1, "def"), rows[1:2]))
    assert run(store.list_datasets("ds")) == [v1, DatasetRecord("ds", 2, 2.0, "t", "{}", 0, 1, "def")]
    assert run(store.dataset_rows("ds", 1)) == rows
    assert [r.position for r in run(store.dataset_rows("ds", 1, "eval"))][:3] == [1, 3, 5]
    results = [EvalResult("ev1", m, i, "a", '{"exact": 1.0}', "", 2.0) for m in ("a", "b") for i in range(3)]
    e = EvalRecord("ev1", "ds", 1, 5.0, "t", '["a", "b"]', '["exact"]', 3, "{}")
    run(store.insert_eval(e, results))
    assert run(store.list_evals()) == [e]
    assert run(store.eval_results("ev1")) == results
