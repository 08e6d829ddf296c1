"""MCP calls in the run state: the recent-call history (in this process and in real Redis, shared by replicas),
and the run hook counting, capping and loop-checking them (Redis on 127.0.0.1:6379 db 15, a prefix per test)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import redis

from interlock.agents.loops import LoopWatch
from interlock.agents.run_hook import RunHook
from interlock.agents.runs import LocalRunCounters, RedisRunCounters, RunCaps, RunCounters, call_token, parse_call
from interlock.audit.chain import AuditEvent
from interlock.auth.agents import AgentDirectory
from interlock.plugins.hooks import Denied
from interlock.store.agent_queries import AgentRecord, OwnerRecord
from tests.agents.helpers import AgentPrincipal
from tests.conftest import REDIS

PAY = '{"amount":5,"iban":"DE89370400440532013000"}'


@dataclass
class _Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


class _NoLedger:
    async def run_rows(self, agent_id: str, run_id: str, since: float, limit: int) -> list[Any]:
        return []  # MCP calls leave no ledger rows

    async def agent_spend_by_minute(self, since: float) -> list[tuple[str, int, int]]:
        return []


def _hook(caps: RunCaps, counters: RunCounters, clock: _Clock) -> tuple[RunHook, list[AuditEvent]]:
    d = AgentDirectory()
    d.owners["own_1"] = OwnerRecord("own_1", "Ann", "ann@example.com", "active", 0.0)
    d.agents["agt_1"] = AgentRecord("agt_1", "bot", "own_1", "d", (), "{}", "active", 0.0, None, caps.model_dump_json())
    audit: list[AuditEvent] = []
    return RunHook(d, counters, _NoLedger(), audit.append, clock=clock), audit


def test_a_call_is_kept_as_its_name_and_a_hash_of_its_arguments() -> None:
    token = call_token("bank__send_money", PAY)
    assert "DE89" not in token and parse_call(token) == ("bank__send_money", token[:16])
    assert parse_call(call_token("bank__send_money", PAY.replace("5", "6"))) != parse_call(token)


def test_a_loop_watch_judges_a_call_before_it_is_made() -> None:
    watch = LoopWatch(3, 2, [("a", "1")])
    assert watch.would_loop(("a", "1")) is None
    watch.add(("a", "1"))
    loop = watch.would_loop(("a", "1"))
    assert loop is not None and loop.calls == ("a",) and loop.times == 3
    assert watch.would_loop(("a", "2")) is None  # changed arguments


async def test_local_recent_calls_keep_the_last_few_and_expire_with_the_run() -> None:
    clock = _Clock()
    counters = LocalRunCounters(clock)
    assert await counters.recent_calls("r") == []
    for call in ("a", "b", "c", "d"):
        await counters.add_call("r", call, 3, 60)
    assert await counters.recent_calls("r") == ["b", "c", "d"]
    clock.now += 61
    assert await counters.recent_calls("r") == []  # idle past its TTL: the run has ended
    await counters.add_call("other", "x", 3, 60)
    assert counters._calls.keys() == {"other"}  # the expired run was purged


async def test_redis_recent_calls_are_shared_trimmed_and_expire(prefix: str) -> None:
    one, two = RedisRunCounters(REDIS, prefix), RedisRunCounters(REDIS, prefix)  # two replicas
    try:
        for i, counters in enumerate((one, two, one, two)):
            await counters.add_call("agt_1:r", f"h{i}:tool", 3, 60)
        assert await two.recent_calls("agt_1:r") == ["h1:tool", "h2:tool", "h3:tool"]
        assert await one.recent_calls("agt_1:other") == []
        raw = redis.Redis.from_url(REDIS)
        (key,) = list(raw.scan_iter(f"{prefix}*"))
        assert key.decode() == f"{prefix}runcalls:agt_1:r" and 0 < raw.pttl(key) <= 60_000
        raw.close()
    finally:
        await one.close()
        await two.close()


async def test_mcp_steps_are_counted_against_the_step_and_time_caps() -> None:
    clock = _Clock()
    hook, audit = _hook(RunCaps(max_steps=2, max_seconds=60), LocalRunCounters(clock), clock)
    p = AgentPrincipal()
    for _ in range(2):
        await hook.mcp_step(p, "job", "bank__whoami")  # type: ignore[arg-type]
    with pytest.raises(Denied) as capped:
        await hook.mcp_step(p, "job", "bank__whoami")  # type: ignore[arg-type]
    assert capped.value.code == "run_step_cap" and capped.value.status == 403
    (entry,) = audit
    assert entry.action == "agent.run_stopped" and entry.metadata["via"] == "mcp"
    assert (entry.metadata["run_id"], entry.metadata["tool"], entry.metadata["steps"]) == ("job", "bank__whoami", 2)
    await hook.mcp_step(p, "late", "bank__whoami")  # type: ignore[arg-type]
    clock.now += 60
    with pytest.raises(Denied) as late:
        await hook.mcp_step(p, "late", "bank__whoami")  # type: ignore[arg-type]
    assert late.value.code == "run_time_cap"


async def test_an_agent_without_caps_is_not_counted_and_a_caller_that_is_no_agent_is_left_alone() -> None:
    clock = _Clock()
    counters = LocalRunCounters(clock)
    hook, _ = _hook(RunCaps(), counters, clock)
    for _ in range(5):
        await hook.mcp_step(AgentPrincipal(), "job", "t")  # type: ignore[arg-type]
    assert counters._runs == {}
    stranger = AgentPrincipal(agent_id=None)
    assert await hook.mcp_loop(stranger, "job", "t", "{}") is None  # type: ignore[arg-type]


async def test_the_mcp_loop_breaker_holds_across_replicas_sharing_redis(prefix: str) -> None:
    clock = _Clock()
    a, b = RedisRunCounters(REDIS, prefix), RedisRunCounters(REDIS, prefix)
    try:
        one, audit = _hook(RunCaps(), a, clock)
        two, _ = _hook(RunCaps(), b, clock)
        p = AgentPrincipal()
        for hook in (one, two):  # the same call, once on each replica
            token = await hook.mcp_loop(p, "job", "bank__send_money", PAY)  # type: ignore[arg-type]
            assert token is not None
            await hook.mcp_called(p, "job", token)  # type: ignore[arg-type]
        with pytest.raises(Denied) as looped:
            await one.mcp_loop(p, "job", "bank__send_money", '{"iban":"DE89370400440532013000","amount":5}')  # type: ignore[arg-type]
        assert looped.value.code == "run_loop" and "'bank__send_money' 3 times" in looped.value.message
        assert "DE89" not in looped.value.message and audit[-1].metadata["via"] == "mcp"
        changed = await two.mcp_loop(p, "job", "bank__send_money", PAY.replace("5", "6"))  # type: ignore[arg-type]
        assert changed is not None
        assert await a.recent_calls("agt_1:job") == [call_token("bank__send_money", PAY)] * 2  # refused: not added
    finally:
        await a.close()
        await b.close()


async def test_loop_thresholds_of_zero_turn_the_mcp_loop_breaker_off() -> None:
    clock = _Clock()
    counters = LocalRunCounters(clock)
    hook, _ = _hook(RunCaps(loop_repeats=0, loop_cycles=0), counters, clock)
    for _ in range(4):
        assert await hook.mcp_loop(AgentPrincipal(), "job", "t", "{}") is None  # type: ignore[arg-type]
    assert await counters.recent_calls("agt_1:job") == []
