"""Budgets and rate limits: the scope must exist, governance applies a change at once, status reads its counters."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from interlock import admin
from interlock.admin import AdminContext, BudgetRef, BudgetSet, KeyCreate, RateLimitRef, RateLimitSet
from interlock.auth.keys import Principal
from interlock.errors import BadRequest, Forbidden, NotFound
from interlock.store.records import UsageRecord
from interlock.types import Price
from tests.admin.conftest import Entries


def _usage(key_id: str, cost_micros: int) -> UsageRecord:
    return UsageRecord(
        request_id=f"req_{time.monotonic_ns()}",
        ts=time.time(),
        key_id=key_id,
        endpoint="chat",
        alias="echo",
        provider="fake",
        upstream_model="echo",
        stream=False,
        prompt_tokens=10,
        completion_tokens=10,
        usage_source="upstream",
        cost_micros=cost_micros,
        price_version="test",
        latency_ms=1.0,
        ttft_ms=None,
        status=200,
    )


async def test_a_budget_applies_at_once_and_reports_spend_and_reservations(
    ctx: AdminContext, operator: Principal, entries: Entries
) -> None:
    key = (await admin.create_key(ctx, operator, KeyCreate(name="app"))).record
    principal = await ctx.keys.authenticate((await admin.create_key(ctx, operator, KeyCreate(name="b"))).token)
    with pytest.raises(NotFound) as unknown:
        await admin.set_budget(ctx, operator, BudgetSet(scope="key", scope_id="key_nope", period="day", limit_usd=1))
    assert unknown.value.code == "key_not_found"

    record = await admin.set_budget(
        ctx, operator, BudgetSet(scope="key", scope_id=principal.key_id or "", period="day", limit_usd=Decimal("0.5"))
    )
    assert record.limit_micros == 500_000
    assert ctx.governance.applies(principal, "echo")  # no wait for the refresh interval
    ctx.store.record_usage(_usage(principal.key_id or "", 1_000))
    ctx.store.record_usage(_usage(key.id, 7_000))  # another key's spend does not count
    [status] = await admin.list_budgets(ctx, operator)
    assert (status.spent_micros, status.reserved_micros, status.remaining_micros) == (1_000, 0, 499_000)

    # A request in flight holds a reservation in the very counter the status reads.
    price = Price(Decimal(1000), Decimal(2000), "test")
    grant = await ctx.governance.admit("req_1", principal, "echo", price, 100, 100, 10)
    [status] = await admin.list_budgets(ctx, operator)
    assert status.reserved_micros == grant.granted_micros and status.spent_micros == 1_000

    await admin.delete_budget(ctx, operator, BudgetRef(scope="key", scope_id=record.scope_id, period="day"))
    assert not ctx.governance.applies(principal, "echo")
    with pytest.raises(NotFound):
        await admin.delete_budget(ctx, operator, BudgetRef(scope="key", scope_id=record.scope_id, period="day"))
    budget_entries = [(e.action, e.target) for e in await entries() if e.action.startswith("budget.")]
    target = f"key:{record.scope_id}"
    assert budget_entries == [("budget.set", target), ("budget.delete", target)]


async def test_rate_limits(ctx: AdminContext, operator: Principal, reader: Principal, entries: Entries) -> None:
    with pytest.raises(BadRequest, match="rpm"):
        await admin.set_rate_limit(ctx, operator, RateLimitSet(scope="model", scope_id="echo"))
    with pytest.raises(NotFound) as unknown:
        await admin.set_rate_limit(ctx, operator, RateLimitSet(scope="model", scope_id="nope", rpm=1))
    assert unknown.value.code == "model_not_found"
    record = await admin.set_rate_limit(ctx, operator, RateLimitSet(scope="model", scope_id="echo", tpm=200))
    assert (record.rpm, record.tpm) == (None, 200)
    anyone = Principal(key_id="key_x", name="x")
    assert ctx.governance.applies(anyone, "echo") and not ctx.governance.applies(anyone, "echo-remote")
    assert await admin.list_rate_limits(ctx, reader) == [record]
    with pytest.raises(Forbidden):
        await admin.delete_rate_limit(ctx, reader, RateLimitRef(scope="model", scope_id="echo"))
    await admin.delete_rate_limit(ctx, operator, RateLimitRef(scope="model", scope_id="echo"))
    assert not ctx.governance.applies(anyone, "echo")
    with pytest.raises(NotFound):
        await admin.delete_rate_limit(ctx, operator, RateLimitRef(scope="model", scope_id="echo"))
    actions = [(e.action, e.metadata_dict().get("tpm")) for e in await entries()]
    assert actions == [("rate_limit.set", 200), ("rate_limit.delete", None)]


async def test_spend_report(ctx: AdminContext, operator: Principal, reader: Principal, user: Principal) -> None:
    key = (await admin.create_key(ctx, operator, KeyCreate(name="app"))).record
    for cost in (100, 250):
        ctx.store.record_usage(_usage(key.id, cost))  # queued: the report waits until they are committed
    report = await admin.spend_report(ctx, reader, admin.SpendQuery(group="key"))
    [row] = report.rows
    assert (row.group, row.requests, row.cost_micros, row.extra["name"]) == (key.id, 2, 350, "app")
    assert report.group == "key" and report.summary["spent_micros"] == 350
    later = await admin.spend_report(ctx, reader, admin.SpendQuery(group="model", since=time.time() + 60))
    assert later.rows == []
    with pytest.raises(Forbidden):
        await admin.spend_report(ctx, user, admin.SpendQuery())
