"""The numbers behind the dashboard's charts, as pure functions of ledger rows, ledger counts and audit entries.

Spend and the reference line come from the admin spend report (the same figures as `interlock spend`);
latency percentiles, which the report does not keep, come from the newest ledger rows in the window.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from interlock.audit.log import AuditEntry
from interlock.store.ledger_queries import RouteCount
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
        counts[action or "?"] += int(n) if n.isascii() and n.isdigit() and len(n) <= 9 else 1
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


def served_alias(deployment: str) -> str:
    """The alias a deployment belongs to (`gateway.routes` names them `<alias>` or `<alias>#<n>`)."""
    return deployment.partition("#")[0]


def routing(counts: Iterable[RouteCount], routers: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Requests per day by the model that served them; per router alias, its decisions per day and the share
    sent past its cheapest model (the "strong" share). `routers`: router alias -> its target aliases, cheapest
    first. A router's decision is read from the deployment that served the request, so a request the router
    sent to one target that residency moved to another counts for the target that served it."""
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    pairs: Counter[tuple[str, str]] = Counter()
    decisions: dict[str, dict[str, Counter[str]]] = {r: defaultdict(Counter) for r in routers}
    for c in counts:
        served = served_alias(c.deployment)
        per_day[c.day][served] += c.requests
        pairs[(c.alias, served)] += c.requests
        if c.alias in decisions:
            decisions[c.alias][c.day][served] += c.requests
    labels = sorted(per_day)
    models = sorted({m for day in per_day.values() for m in day})
    out_routers: dict[str, Any] = {}
    for alias, targets in routers.items():
        days = decisions[alias]
        totals = {d: sum(days[d].values()) for d in labels}
        strong = {d: totals[d] - days[d][targets[0]] for d in labels}
        everything = sum(totals.values())
        out_routers[alias] = {
            "targets": list(targets),
            "cheap": targets[0],
            "by_target": {t: [days[d][t] for d in labels] for t in targets},
            "strong_share": [round(strong[d] / totals[d], 4) if totals[d] else None for d in labels],
            "share": round(sum(strong.values()) / everything, 4) if everything else None,
            "requests": everything,
        }
    return {
        "labels": labels,
        "served": {m: [per_day[d][m] for d in labels] for m in models},
        "routes": [{"asked": a, "served": s, "requests": n} for (a, s), n in sorted(pairs.items())],
        "routers": out_routers,
    }
