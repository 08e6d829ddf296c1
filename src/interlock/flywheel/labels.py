"""Router labels from the flywheel: captured requests and their feedback, as rows `interlock router train` reads.

Each captured request with a value of `metric` becomes one outcome row, `{"messages", "model", "score",
"group"}`: the prompt as captured (after the guardrails), the alias of the deployment that answered it
(what the router chooses between), and the feedback value as a quality score in [0, 1] — a boolean metric as
0 or 1; a float metric scaled by its declared `min` and `max` (one without both must already lie in [0, 1],
other values are skipped and counted). The latest value of a request wins. `group` is the alias the client
asked for, so training can leave whole aliases out of its cross-validation. Rows of the same prompt are
merged by the router's reader (`routing.router.data`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from interlock.errors import BadRequest
from interlock.settings import FlywheelMetric
from interlock.store.flywheel_queries import FlywheelStore


@dataclass(frozen=True, slots=True)
class Labels:
    """The rows, and how many captures were left out and why."""

    rows: list[dict[str, Any]]
    unrated: int  # captures without a value of the metric
    out_of_range: int  # values a float metric without min and max gave outside [0, 1]


def score_of(metric: FlywheelMetric, value: float) -> float | None:
    """`value` as a score in [0, 1] (None: it cannot be one)."""
    if metric.type == "boolean":
        return 1.0 if value else 0.0
    if metric.min is not None and metric.max is not None and metric.max > metric.min:
        return min(1.0, max(0.0, (value - metric.min) / (metric.max - metric.min)))
    return value if 0.0 <= value <= 1.0 else None


async def router_labels(
    store: FlywheelStore,
    metric: FlywheelMetric,
    since: float | None = None,
    until: float | None = None,
    aliases: tuple[str, ...] = (),
) -> Labels:
    """The labelled rows of the captures from `since` to `until` (of `aliases`) rated on `metric`."""
    latest: dict[str, tuple[float, float]] = {}
    for f in await store.list_feedback():
        if f.kind == "request" and f.metric == metric.name:
            seen = latest.get(f.subject_id)
            if seen is None or f.created_at >= seen[0]:
                latest[f.subject_id] = (f.created_at, f.value)
    if not latest:
        raise BadRequest(f"no feedback on requests with metric '{metric.name}' yet", code="no_feedback")
    rows: list[dict[str, Any]] = []
    unrated = out_of_range = 0
    for c in await store.captures_between(since, until, aliases):
        found = latest.get(c.request_id)
        if found is None:
            unrated += 1
            continue
        score = score_of(metric, found[1])
        if score is None:
            out_of_range += 1
            continue
        messages = orjson.loads(c.request).get("messages") or []
        model = c.deployment.split("#", 1)[0] or c.alias
        rows.append({"messages": messages, "model": model, "score": score, "group": c.alias})
    return Labels(rows, unrated, out_of_range)
