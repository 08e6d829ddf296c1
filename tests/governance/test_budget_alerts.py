"""Budget-threshold alerts: claimed once per budget, period and threshold, audited, and posted as a signed
webhook to a receiver on 127.0.0.1 (with retries past a failing answer)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from interlock.audit.log import AuditEvent, AuditLog
from interlock.audit.sqlite_store import SqliteAuditStore
from interlock.governance.admission import Governance
from interlock.governance.alerts import BudgetAlerts, webhook_failure_auditor
from interlock.governance.counters import LocalCounters
from interlock.governance.webhook import SIGNATURE_HEADER, Webhook, sign, verify_signature
from interlock.store.records import BudgetRecord, UsageRecord
from interlock.store.sqlite import SqliteStore

SECRET = b"whsec-test"


def _row(i: int, cost: int, key: str = "key_1") -> UsageRecord:
    return UsageRecord(
        request_id=f"req_{i:032x}", ts=time.time(), key_id=key, endpoint="chat", alias="echo", provider="fake",
        upstream_model="echo", stream=False, prompt_tokens=3, completion_tokens=2, usage_source="provider",
        cost_micros=cost, price_version="config", latency_ms=1.0, ttft_ms=None, status=200,
    )  # fmt: skip


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that answers each post with the next of `answers` (then 200)."""

    url: str = ""
    answers: list[int] = field(default_factory=list)
    got: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def hook(request: web.Request) -> web.Response:
        rec.got.append((await request.read(), dict(request.headers)))
        return web.Response(status=rec.answers.pop(0) if rec.answers else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


@dataclass
class World:
    store: SqliteStore
    audit: AuditLog
    governance: Governance


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = SqliteStore(tmp_path / "db.sqlite", flush_interval_ms=5)
    await store.open()
    audit = AuditLog(SqliteAuditStore(tmp_path / "db.sqlite"), tmp_path)
    await audit.open()
    try:
        yield World(store, audit, Governance(store, LocalCounters()))
    finally:
        await audit.close()
        await store.close()


def test_signatures_verify_only_for_the_same_body_secret_and_a_recent_time() -> None:
    body, now = b'{"a":1}', 1_767_225_600
    header = sign(SECRET, body, now)
    assert verify_signature(SECRET, body, header, now + 10)
    assert not verify_signature(SECRET, body + b" ", header, now)
    assert not verify_signature(b"other", body, header, now)
    assert not verify_signature(SECRET, body, header, now + 301)  # replayed later
    assert not verify_signature(SECRET, body, "t=x,v1=00", now)
    assert not verify_signature(SECRET, body, "", now)


async def test_each_threshold_alerts_once_signed_and_audited(world: World, receiver: Receiver) -> None:
    await world.store.upsert_budget(BudgetRecord("key", "key_1", "day", 1_000_000, time.time()))
    receiver.answers = [503]  # the first delivery fails; the retry gets through
    webhook = Webhook(receiver.url, SECRET, attempts=3, backoff_s=0.01)
    alerts = BudgetAlerts(world.store, world.governance, world.audit, [0.8, 1.0], webhook=webhook, interval_s=0)
    alerts.start()
    try:
        world.store.record_usage(_row(1, 700_000))
        assert await alerts.check() == []  # 70%: under both thresholds
        world.store.record_usage(_row(2, 150_000))
        (alert,) = await alerts.check()  # 85%
        assert (alert.threshold, alert.spent_micros) == (0.8, 850_000)
        assert await alerts.check() == []  # the same period and threshold: never again
        await webhook.drain()
    finally:
        await alerts.close()
    assert len(receiver.got) == 2  # the refused attempt and its retry
    (body1, h1), (body2, h2) = receiver.got
    assert body1 == body2 and h1["x-interlock-delivery"] == h2["x-interlock-delivery"]
    assert h2["x-interlock-event"] == "budget.threshold"
    assert verify_signature(SECRET, body2, h2[SIGNATURE_HEADER])
    event = orjson.loads(body2)
    assert event["type"] == "budget.threshold" and event["data"]["threshold"] == 0.8
    assert event["data"]["budget"] == {"scope": "key", "scope_id": "key_1", "period": "day", "limit_micros": 1_000_000}
    assert event["data"]["spent_micros"] == 850_000 and event["data"]["period_key"].startswith("d:")
    (entry,) = [e for e in await world.audit.recent(10) if e.action == "budget.threshold_alert"]
    meta = entry.metadata_dict()
    assert entry.target == "key:key_1" and meta["threshold"] == 0.8 and meta["webhook"] == event["id"]


async def test_a_second_replica_or_a_restart_does_not_alert_again(world: World) -> None:
    await world.store.upsert_budget(BudgetRecord("team", "team_1", "month", 1000, time.time()))
    world.store.record_usage(replace(_row(1, 1200), team_id="team_1"))  # 120%: both thresholds at once
    first = BudgetAlerts(world.store, world.governance, world.audit, [1.0, 0.5], interval_s=0)
    second = BudgetAlerts(world.store, Governance(world.store, LocalCounters()), world.audit, [0.5, 1.0], interval_s=0)
    assert [a.threshold for a in await first.check()] == [0.5, 1.0]
    assert await second.check() == []
    # A new period is a new alert: next month, once its spend crosses a threshold.
    next_month = time.time() + 32 * 86400
    assert await second.check(now=next_month) == []  # nothing spent in that month yet
    actions = [e.action for e in await world.audit.recent(10)]
    assert actions.count("budget.threshold_alert") == 2


async def test_an_event_never_accepted_is_given_up_and_audited(world: World, receiver: Receiver) -> None:
    receiver.answers = [500, 500, 500, 400]
    webhook = Webhook(receiver.url, SECRET, attempts=3, backoff_s=0.01, on_failure=webhook_failure_auditor(world.audit))
    webhook.start()
    try:
        assert webhook.send("budget.threshold", {"n": 1}) is not None
        await webhook.drain()
        assert len(receiver.got) == 3  # bounded: three attempts, no more
        assert webhook.send("budget.threshold", {"n": 2}) is not None
        await webhook.drain()
        assert len(receiver.got) == 4  # a 400 is not retried
    finally:
        await webhook.close()
    # `record` queues; an `append` behind it returns once everything queued before it is committed.
    await world.audit.append(AuditEvent.admin("test.barrier", actor_id=None, actor_name="test"))
    failures = [e for e in await world.audit.recent(10) if e.action == "webhook.delivery_failed"]
    assert sorted(e.reason for e in failures) == ["HTTP 400", "HTTP 500 after 3 attempts"]


async def test_send_never_waits_on_the_receiver(world: World) -> None:
    webhook = Webhook("http://127.0.0.1:9/unreachable", SECRET, queue_size=2)
    # Not started: nothing is delivered, and a full queue drops the event instead of waiting.
    assert webhook.send("e", {}) is not None and webhook.send("e", {}) is not None
    assert webhook.send("e", {}) is None
    await webhook.close()
