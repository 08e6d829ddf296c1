"""The numbers behind the dashboard's charts."""

from __future__ import annotations

from interlock.audit.log import AuditEntry, AuditEvent
from interlock.store.records import SpendRow, UsageRecord
from interlock.ui.charts import guardrail_verdicts, overview, percentile

DAY1 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _row(ts: float, latency: float) -> UsageRecord:
    return UsageRecord("r", ts, None, "/v1/chat/completions", "echo", "fake", "m", False, 1, 1, "upstream", 1, "v",
                       latency, None, 200)  # fmt: skip


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([7.0], 99) == 7
    assert percentile([3.0, 1.0, 2.0], 50) == 2
    assert percentile([], 50) is None


def test_overview_orders_days_and_carries_the_reference_line() -> None:
    days = [
        SpendRow("2026-01-02", 2, 10, 10, 3_000_000, errors=1, reference_cost_micros=9_000_000),
        SpendRow("2026-01-01", 1, 5, 5, 1_000_000, reference_cost_micros=4_000_000),
    ]
    models = [SpendRow("echo", 3, 15, 15, 4_000_000, reference_cost_micros=13_000_000)]
    rows = [_row(DAY1 + 10, 100), _row(DAY1 + 86400 + 5, 10), _row(DAY1 + 86400 + 6, 30)]
    summary = {"spent_micros": 4_000_000, "reference_cost_micros": 13_000_000, "saved_percent": 69.23,
               "reference_model": "gpt-4o"}  # fmt: skip
    data = overview(days, models, rows, summary)
    assert data["by_day"]["labels"] == ["2026-01-01", "2026-01-02"]
    assert data["by_day"]["spend_usd"] == [1.0, 3.0]
    assert data["by_day"]["reference_usd"] == [4.0, 9.0]
    assert data["by_day"]["saved_usd"] == [3.0, 6.0]
    assert data["by_day"]["p50_ms"] == [100, 10]
    assert data["by_day"]["p99_ms"] == [100, 30]
    assert data["totals"] == {
        "requests": 3, "errors": 1, "p50_ms": 30, "p99_ms": 100, "spend_usd": 4.0, "reference_usd": 13.0,
        "saved_usd": 9.0, "saved_percent": 69.23,
    }  # fmt: skip
    assert data["by_model"] == {"labels": ["echo"], "requests": [3], "spend_usd": [4.0], "reference_usd": [13.0]}


def test_no_reference_means_no_savings() -> None:
    data = overview([], [], [], {"spent_micros": 0, "reference_cost_micros": 0, "saved_percent": None})
    assert data["totals"]["saved_usd"] is None and data["totals"]["p50_ms"] is None


def _verdict(ts: float, inp: str, out: str, blocked: bool) -> AuditEntry:
    event = AuditEvent("guardrail.verdict", "deny" if blocked else "allow", "k", "app", "echo", "",
                       {"input": inp, "output": out}, ts)  # fmt: skip
    return AuditEntry.chain(event, 1, "0" * 64)


def test_guardrail_verdicts_count_findings_per_day_and_action() -> None:
    entries = [
        _verdict(DAY1 + 1, "CREDIT_CARD:block:1", "", True),
        _verdict(DAY1 + 2, "EMAIL_ADDRESS:pseudonymise:2,PHONE_NUMBER:redact:1", "EMAIL_ADDRESS:redact:1", False),
        _verdict(DAY1 + 86400, "EMAIL_ADDRESS:pseudonymise:3", "", False),
        AuditEntry.chain(AuditEvent.admin("key.create", actor_id=None, actor_name="admin"), 2, "0" * 64),
    ]
    data = guardrail_verdicts(entries)
    assert data["labels"] == ["2026-01-01", "2026-01-02"]
    assert data["actions"] == {"block": [1, 0], "pseudonymise": [2, 3], "redact": [2, 0]}
    assert data["blocked_requests"] == [1, 0]


def test_routing_counts_the_serving_alias_and_each_routers_strong_share() -> None:
    from interlock.store.ledger_queries import RouteCount
    from interlock.ui.charts import routing

    counts = [
        RouteCount("2026-01-01", "auto", "cheap", 6, 0),
        RouteCount("2026-01-01", "auto", "strong#0", 2, 0),
        RouteCount("2026-01-01", "auto", "strong#1", 2, 1),  # a second deployment of the strong alias
        RouteCount("2026-01-02", "auto", "cheap", 1, 0),
        RouteCount("2026-01-02", "echo", "echo-remote", 3, 0),  # a fallback
        RouteCount("2026-01-02", "echo", "echo", 5, 0),
    ]
    data = routing(counts, {"auto": ("cheap", "strong")})
    assert data["labels"] == ["2026-01-01", "2026-01-02"]
    assert data["served"] == {"cheap": [6, 1], "echo": [0, 5], "echo-remote": [0, 3], "strong": [4, 0]}
    auto = data["routers"]["auto"]
    assert auto["by_target"] == {"cheap": [6, 1], "strong": [4, 0]}
    assert auto["strong_share"] == [0.4, 0.0] and auto["share"] == round(4 / 11, 4) and auto["requests"] == 11
    assert {"asked": "echo", "served": "echo-remote", "requests": 3} in data["routes"]
    empty = routing([], {"auto": ("cheap", "strong")})["routers"]["auto"]
    assert empty["share"] is None and empty["strong_share"] == []
