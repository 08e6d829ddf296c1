"""The numbers behind the dashboard's charts, as pure functions of ledger rows and audit entries.

Spend and the reference line come from the admin spend report (the same figures as `interlock spend`);
latency percentiles, which the report does not keep, come from the newest ledger rows in the window.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from interlock.audit.log import AuditEntry
from interlock.store.records import SpendRow, UsageRecord


def day_of(ts: float) -> str:
    """The UTC day of an epoch second, as the ledger's day grouping writes it (YYYY-MM-DD)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q`-th percentile (0 < q <= 100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _usd(micros: int) -> float:
    return round(micros / 1_000_000, 6)


def overview(
    days: Sequence[SpendRow],
    models: Sequence[SpendRow],
    rows: Iterable[UsageRecord],
    summary: dict[str, Any],
) -> dict[str, Any]:
    """The overview charts: per day (spend, reference, requests, errors, p50/p99) and per model, and totals."""
    latencies: dict[str, list[float]] = defaultdict(list)
    every: list[float] = []
    for row in rows:
        latencies[day_of(row.ts)].append(row.latency_ms)
        every.append(row.latency_ms)
    by_day = sorted(days, key=lambda r: r.group)
    labels = [r.group for r in by_day]
    spent = summary.get("spent_micros", 0)
    reference = summary.get("reference_cost_micros", 0)
    return {
        "reference_model": summary.get("reference_model"),
        "totals": {
            "requests": sum(r.requests for r in by_day),
            "errors": sum(r.errors for r in by_day),
            "p50_ms": percentile(every, 50),
            "p99_ms": percentile(every, 99),
            "spend_usd": _usd(spent),
            "reference_usd": _usd(reference),
            "saved_usd": _usd(reference - spent) if reference else None,
            "saved_percent": summary.get("saved_percent"),
        },
        "by_day": {
            "labels": labels,
            "requests": [r.requests for r in by_day],
            "errors": [r.errors for r in by_day],
            "spend_usd": [_usd(r.cost_micros) for r in by_day],
            "reference_usd": [_usd(r.reference_cost_micros) for r in by_day],
            "saved_usd": [_usd(r.reference_cost_micros - r.cost_micros) for r in by_day],
            "p50_ms": [percentile(latencies.get(d, []), 50) for d in labels],
            "p99_ms": [percentile(latencies.get(d, []), 99) for d in labels],
        },
        "by_model": {
            "labels": [r.group for r in models],
            "requests": [r.requests for r in models],
            "spend_usd": [_usd(r.cost_micros) for r in models],
            "reference_usd": [_usd(r.reference_cost_micros) for r in models],
        },
    }


def _actions(flat: object) -> Counter[str]:
    """`CREDIT_CARD:restrict:1,EMAIL_ADDRESS:pseudonymise:2` -> findings per action."""
    counts: Counter[str] = Counter()
    if not isinstance(flat, str) or not flat:
        return counts
    for part in flat.split(","):
        _, _, rest = part.partition(":")
        action, _, n = rest.partition(":")
        counts[action or "?"] += int(n) if n.isdigit() else 1
    return counts


def guardrail_verdicts(entries: Iterable[AuditEntry]) -> dict[str, Any]:
    """Findings acted on per UTC day and action, from the audit log's `guardrail.verdict` entries."""
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    blocked: Counter[str] = Counter()
    for entry in entries:
        if entry.action != "guardrail.verdict":
            continue
        meta = entry.metadata_dict()
        day = day_of(entry.ts)
        per_day[day].update(_actions(meta.get("input")) + _actions(meta.get("output")))
        blocked[day] += entry.decision == "deny"
    labels = sorted(per_day)
    actions = sorted({a for c in per_day.values() for a in c})
    return {
        "labels": labels,
        "actions": {a: [per_day[d][a] for d in labels] for a in actions},
        "blocked_requests": [blocked[d] for d in labels],
    }
