"""Runs, caps and the loop breaker as pure decisions, the run counters (local and real Redis), and the run hook."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from interlock.agents.loops import canonical_arguments, find_loop, history
from interlock.agents.run_hook import RunHook
from interlock.agents.runs import (
    LocalRunCounters,
    RedisRunCounters,
    RunCaps,
    RunTotals,
    derive_run_id,
    over_cap,
    seed_totals,
)
from interlock.audit.chain import AuditEvent
from interlock.auth.agents import AgentDirectory
from interlock.errors import GatewayError
from interlock.governance.counters import CountersUnavailable
from interlock.plugins.hooks import CutStream, Denied, Outcome
from interlock.store.agent_queries import AgentRecord, HaltRecord, OwnerRecord
from interlock.types import ChatRequest, ChatResponse, Usage
from tests.agents.helpers import AgentPrincipal

REDIS = "redis://127.0.0.1:6379/0"
RUN_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # what the x-interlock-run-id header accepts


def _call(name: str, args: str, call_id: str = "c") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def _request(*calls: tuple[str, str], first: str = "pay invoice 7", system: str = "You pay.") -> ChatRequest:
    """A conversation whose assistant turns made `calls`, one per turn, each answered by a tool result."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": first}]
    for i, (name, args) in enumerate(calls):
        messages.append({"role": "assistant", "tool_calls": [_call(name, args, f"c{i}")]})
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": "ok"})
    tools = [{"type": "function", "function": {"name": n}} for n in ("search", "pay", "read")]
    return ChatRequest.model_validate({"model": "m", "messages": messages, "tools": tools})


# run ids ----------------------------------------------------------------------------------------


def test_the_derived_run_id_is_the_same_for_every_step_of_a_task() -> None:
    first = derive_run_id("agt_1", _request())
    later = derive_run_id("agt_1", _request(("search", "{}"), ("read", '{"id": 3}')))
    assert first == later and first.startswith("auto_") and RUN_ID.fullmatch(first)


def test_the_derived_run_id_differs_by_task_agent_system_prompt_and_tools() -> None:
    base = derive_run_id("agt_1", _request())
    assert derive_run_id("agt_1", _request(first="pay invoice 8")) != base
    assert derive_run_id("agt_2", _request()) != base
    assert derive_run_id("agt_1", _request(system="You read mail.")) != base
    fewer = _request().model_copy(update={"tools": _request().tools[:2]})  # type: ignore[index]
    assert derive_run_id("agt_1", fewer) != base
    reordered = _request().model_copy(update={"tools": list(reversed(_request().tools or []))})
    assert derive_run_id("agt_1", reordered) == base  # tool names are sorted


# caps -------------------------------------------------------------------------------------------


def _totals(steps: int = 0, spend: int = 0, tokens: int = 0, started: float = 1000.0) -> RunTotals:
    return RunTotals(steps, spend, tokens, started, started)


def test_each_cap_stops_the_run_with_its_own_code() -> None:
    caps = RunCaps(max_steps=3, max_spend_micros=500, max_tokens=100, max_seconds=60)
    assert over_cap(caps, _totals(2, 499, 99), now=1059.0) is None
    cases = {
        "run_step_cap": _totals(steps=3),
        "run_spend_cap": _totals(spend=500),
        "run_token_cap": _totals(tokens=100),
    }
    for code, totals in cases.items():
        hit = over_cap(caps, totals, now=1000.0)
        assert hit is not None and hit.code == code and "x-interlock-run-id" in hit.message
    hit = over_cap(caps, _totals(), now=1060.0)
    assert hit is not None and hit.code == "run_time_cap" and "60 s" in hit.message
    spend = over_cap(caps, _totals(spend=900), now=1000.0)
    assert spend is not None and "$0.0005" in spend.message
    assert over_cap(RunCaps(), _totals(10**6, 10**9, 10**9), now=10**9) is None  # no caps, no stop


def test_caps_are_validated() -> None:
    with pytest.raises(ValueError):
        RunCaps.model_validate({"max_steps": 0})
    with pytest.raises(ValueError):
        RunCaps.model_validate({"max_stpes": 3})
    assert not RunCaps().counted() and RunCaps(max_seconds=5).counted()


def test_a_run_is_seeded_from_its_ledger_rows_back_to_the_first_long_gap() -> None:
    # newest first: (ts, cost, tokens, reached a model); a gap of 5000 s ends the earlier run
    rows = [(9000.0, 10, 5, True), (8990.0, 0, 0, False), (8900.0, 20, 7, True), (3000.0, 999, 999, True)]
    totals = seed_totals(rows, now=9010.0, idle_s=3600)
    assert totals == RunTotals(steps=2, spend_micros=30, tokens=12, started=8900.0, last=9000.0)
    fresh = seed_totals([(1000.0, 5, 5, True)], now=9000.0, idle_s=3600)  # idle since: a new run
    assert fresh == RunTotals(0, 0, 0, 9000.0, 9000.0)


# loops ------------------------------------------------------------------------------------------


def test_the_same_call_three_times_is_a_loop_whatever_the_key_order() -> None:
    calls = history(
        _request(
            ("pay", '{"to": "x", "amount": 5}'), ("pay", '{"amount":5,"to":"x"}'), ("pay", '{"to":"x","amount":5}')
        )
    )
    loop = find_loop(calls)
    assert loop is not None and loop.calls == ("pay",) and loop.times == 3
    assert "'pay' 3 times" in loop.describe()
    assert find_loop(calls[:2]) is None


def test_retries_with_changed_arguments_are_no_loop() -> None:
    calls = history(_request(("search", '{"q": "a"}'), ("search", '{"q": "b"}'), ("search", '{"q": "c"}')))
    assert find_loop(calls) is None
    calls = history(_request(("pay", '{"amount": 5}'), ("pay", '{"amount": 5}'), ("pay", '{"amount": 6}')))
    assert find_loop(calls) is None


def test_a_cycle_is_a_loop_and_only_the_tail_counts() -> None:
    a, b, c = ("search", '{"q": "a"}'), ("read", '{"id": 1}'), ("pay", "{}")
    loop = find_loop(history(_request(a, b, a, b)))
    assert loop is not None and loop.calls == ("search", "read") and loop.times == 2
    assert "'search' -> 'read'" in loop.describe()
    three = find_loop(history(_request(c, a, b, c, a, b)))
    assert three is not None and three.calls == ("pay", "search", "read")
    assert find_loop(history(_request(a, b, a))) is None
    assert find_loop(history(_request(a, a, a, b))) is None  # it moved on
    assert find_loop(history(_request(a, b, a, b)), cycles=0) is None
    assert find_loop(history(_request(a, a, a)), repeats=0) is None
    assert find_loop(history(_request(a, a, a, a)), repeats=0, cycles=2) is None  # A A is the repeat case


def test_canonical_arguments() -> None:
    assert canonical_arguments('{"b": [1, 2], "a": {"y": 1, "x": 2}}') == '{"a":{"x":2,"y":1},"b":[1,2]}'
    assert canonical_arguments("  not json ") == "not json"
    assert canonical_arguments("") == "{}"


# counters ---------------------------------------------------------------------------------------


class _Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_local_counters_count_steps_up_to_the_cap_and_expire_when_idle() -> None:
    clock = _Clock()
    counters = LocalRunCounters(clock)
    assert await counters.step("r", 2, clock.now, 60) is None  # unknown: seed it
    await counters.seed("r", RunTotals(0, 0, 0, clock.now, clock.now), 60)
    first, second, third = [await counters.step("r", 2, clock.now, 60) for _ in range(3)]
    assert first and first.admitted and second and second.admitted and third and not third.admitted
    assert third.totals.steps == 2
    await counters.add("r", 30, 7, 60)
    step = await counters.step("r", None, clock.now, 60)
    assert step is not None and (step.totals.spend_micros, step.totals.tokens) == (30, 7)
    clock.now += 61
    assert await counters.step("r", None, clock.now, 60) is None  # idle past its TTL: the run has ended


async def test_redis_counters_are_shared_and_never_overshoot_the_step_cap() -> None:
    prefix = f"test-{uuid.uuid4().hex}:"
    one, two = RedisRunCounters(REDIS, prefix), RedisRunCounters(REDIS, prefix)  # two replicas
    try:
        assert await one.step("r", 5, 1000.0, 60) is None
        await one.seed("r", RunTotals(0, 0, 0, 1000.0, 1000.0), 60)
        await two.seed("r", RunTotals(9, 9, 9, 5.0, 5.0), 60)  # the first seed wins
        steps = await asyncio.gather(*(c.step("r", 5, 1001.0, 60) for c in (one, two) for _ in range(10)))
        assert sum(1 for s in steps if s and s.admitted) == 5
        await two.add("r", 120, 40, 60)
        seen = await one.step("r", None, 1002.0, 60)
        assert seen is not None and seen.totals == RunTotals(5, 120, 40, 1000.0, 1001.0)
    finally:
        await one.close()
        await two.close()


async def test_unreachable_redis_is_counters_unavailable() -> None:
    counters = RedisRunCounters("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(CountersUnavailable):
            await counters.step("r", 1, 0.0, 60)
    finally:
        await counters.close()


# the hook ---------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    request_id: str = "req_1"
    endpoint: str = "chat"
    principal: AgentPrincipal = field(default_factory=AgentPrincipal)
    alias: str = "m"
    stream: bool = False
    run_id: str = ""
    restricted: bool = False
    cacheable: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)


class _Ledger:
    def __init__(self, rows: list[tuple[float, int, int, bool]] | None = None) -> None:
        self.rows = rows or []
        self.asked: list[tuple[str, str]] = []

    async def run_rows(
        self, agent_id: str, run_id: str, since: float, limit: int
    ) -> list[tuple[float, int, int, bool]]:
        self.asked.append((agent_id, run_id))
        return [r for r in self.rows if r[0] >= since][:limit]

    async def agent_spend_by_minute(self, since: float) -> list[tuple[str, int, int]]:
        return []


class _Down(LocalRunCounters):
    async def step(self, *args: Any, **kwargs: Any) -> Any:
        raise CountersUnavailable("down")


def _directory(caps: RunCaps) -> AgentDirectory:
    d = AgentDirectory()
    d.owners["own_1"] = OwnerRecord("own_1", "Ann", "ann@example.com", "active", 0.0)
    d.agents["agt_1"] = AgentRecord("agt_1", "bot", "own_1", "d", (), "{}", "active", 0.0, None, caps.model_dump_json())
    return d


def _hook(caps: RunCaps, **kw: Any) -> tuple[RunHook, list[AuditEvent], _Clock]:
    audit: list[AuditEvent] = []
    clock = kw.pop("clock", _Clock())
    counters = kw.pop("counters", LocalRunCounters(clock))
    hook = RunHook(_directory(caps), counters, kw.pop("ledger", _Ledger()), audit.append, clock=clock, **kw)
    return hook, audit, clock


def _outcome(cost: int, tokens: int) -> Outcome:
    return Outcome(200, Usage.of(tokens, 0), "provider", cost, attempts=1)


async def _step(hook: RunHook, ctx: _Ctx, request: ChatRequest, cost: int = 0, tokens: int = 0) -> None:
    await hook.before(ctx, request)  # type: ignore[arg-type]
    hook.finish(ctx, _outcome(cost, tokens))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the background settlement
    await asyncio.sleep(0)


async def test_the_hook_derives_the_run_id_and_stops_the_run_at_its_spend_cap() -> None:
    hook, audit, _ = _hook(RunCaps(max_spend_micros=100))
    ctx = _Ctx()
    await _step(hook, ctx, _request(), cost=60)
    assert ctx.run_id == derive_run_id("agt_1", _request())
    await _step(hook, _Ctx(), _request(("search", "{}")), cost=60)  # 60 < 100: admitted; now 120
    with pytest.raises(Denied) as refused:
        await hook.before(_Ctx(), _request(("search", "{}"), ("read", "{}")))  # type: ignore[arg-type]
    assert refused.value.code == "run_spend_cap" and refused.value.status == 403
    (entry,) = audit
    assert entry.action == "agent.run_stopped" and entry.decision == "deny" and entry.target == "agt_1"
    assert entry.metadata["code"] == "run_spend_cap" and entry.metadata["run_id"] == ctx.run_id
    assert entry.metadata["owner_id"] == "own_1"
    other = _Ctx(run_id="another-task")  # a header's run id is its own run
    await hook.before(other, _request())  # type: ignore[arg-type]
    assert other.run_id == "another-task"


async def test_the_hook_stops_a_run_past_its_wall_time_and_seeds_from_the_ledger() -> None:
    clock = _Clock(10_000.0)
    ledger = _Ledger([(9_990.0, 5, 5, True), (9_950.0, 5, 5, True)])  # the run began 50 s ago elsewhere
    hook, _, _ = _hook(RunCaps(max_seconds=60, max_steps=3), clock=clock, ledger=ledger)
    await _step(hook, _Ctx(run_id="r1"), _request())  # step 3 of 3
    assert ledger.asked == [("agt_1", "r1")]
    with pytest.raises(Denied) as refused:
        await hook.before(_Ctx(run_id="r1"), _request())  # type: ignore[arg-type]
    assert refused.value.code == "run_step_cap"
    clock.now += 20
    hook2, _, _ = _hook(RunCaps(max_seconds=60), clock=clock, ledger=ledger)
    with pytest.raises(Denied) as late:
        await hook2.before(_Ctx(run_id="r1"), _request())  # type: ignore[arg-type]
    assert late.value.code == "run_time_cap"


async def test_the_hook_refuses_a_loop_naming_the_tool_and_passes_changed_arguments() -> None:
    hook, audit, _ = _hook(RunCaps())
    looping = _request(("pay", '{"a": 1}'), ("pay", '{"a": 1}'), ("pay", '{"a": 1}'))
    with pytest.raises(Denied) as refused:
        await hook.before(_Ctx(), looping)  # type: ignore[arg-type]
    assert refused.value.code == "run_loop" and "'pay'" in refused.value.message
    assert audit[0].metadata["tool"] == "pay" and '"a"' not in audit[0].reason
    changed = _request(("pay", '{"a": 1}'), ("pay", '{"a": 2}'), ("pay", '{"a": 3}'))
    assert await hook.before(_Ctx(), changed) is changed  # type: ignore[arg-type]


async def test_the_hook_fails_closed_or_open_when_the_counters_are_down() -> None:
    closed, _, _ = _hook(RunCaps(max_steps=5), counters=_Down())
    with pytest.raises(GatewayError) as down:
        await closed.before(_Ctx(), _request())  # type: ignore[arg-type]
    assert down.value.status == 503 and down.value.code == "run_state_unavailable"
    opened, _, _ = _hook(RunCaps(max_steps=5), counters=_Down(), fail_open=True)
    request = _request()
    assert await opened.before(_Ctx(), request) is request  # type: ignore[arg-type]


async def test_callers_that_are_not_agents_are_left_alone() -> None:
    hook, _, _ = _hook(RunCaps(max_steps=1))
    ctx = _Ctx(principal=AgentPrincipal(agent_id=None, owner_id=None))
    for _ in range(3):
        await hook.before(ctx, _request())  # type: ignore[arg-type]
    assert ctx.run_id == ""
    assert await hook.on_batch(ctx, []) == []  # type: ignore[arg-type]


async def test_a_halt_ends_the_agents_stream_at_the_next_batch() -> None:
    hook, _, _ = _hook(RunCaps())
    ctx = _Ctx(stream=True)
    assert await hook.on_batch(ctx, []) == []  # type: ignore[arg-type]
    hook._directory.halts[("owner", "own_1")] = HaltRecord("owner", "own_1", "drill", "gov", 0.0)
    with pytest.raises(CutStream) as cut:
        await hook.on_batch(ctx, [])  # type: ignore[arg-type]
    assert cut.value.error.code == "agent_halted" and "drill" in cut.value.error.message
    answer = ChatResponse(id="r", created=0, model="m", choices=[])
    with pytest.raises(GatewayError) as withheld:  # a complete answer is withheld too
        await hook.after(ctx, answer)  # type: ignore[arg-type]
    assert withheld.value.status == 403 and withheld.value.code == "agent_halted"
    del hook._directory.halts[("owner", "own_1")]
    assert await hook.after(ctx, answer) is answer  # type: ignore[arg-type]
