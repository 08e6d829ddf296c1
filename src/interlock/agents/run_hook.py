"""The run hook: every step of an agent is placed in its run, checked against the run's caps and the loop
breaker before a model is called, and counted after; an in-flight stream of a halted agent is ended.

For agent principals only. `before` sets the run id (the header's, or `runs.derive_run_id`'s) on the
request's context, so the ledger row carries it, and on the answer's `x-interlock-run-id` header;
refuses a request whose history ends in a loop (`loops.find_loop`: code `run_loop`, naming the tool);
then, when the agent has caps, counts the step in the shared run counters (`runs.RunCounters`, seeded
from the ledger) and refuses a run over a cap (`run_step_cap`, `run_spend_cap`, `run_token_cap`,
`run_time_cap`). A refusal is a 403 before any model
is called — not a 429: waiting does not help a stopped run, and the SDKs retry a 429 on their own — and
an audit entry `agent.run_stopped` with the agent, its owner, the run and the code. `finish` adds the
step's cost and tokens to the run.

`before` also leaves a `loops.LoopWatch` (the request's tool-call history and the agent's thresholds) in
the context's notes: the agent tool-call policy (`agents.hook`) removes a call in the answer that would
complete a loop, so the looping call never reaches the agent, and the next request is stopped as above.

MCP calls (`/mcp` tools/call, `mcp.gateway`) are steps of their run as well: `mcp_step` counts one against
the same caps (spend and tokens as the run's model steps left them), `mcp_loop` refuses a call that would
complete a loop of the run's recent MCP calls (kept in the run state, `runs.add_call`), and `mcp_called`
adds a call that went through. Their refusals are the same `Denied` (codes as above) and the same audit
entry, with `via: mcp` and the tool.

`on_batch` checks the agent directory on every streamed batch: once a halt (or a suspension, a removal,
the owner's suspension) covers the agent, the stream ends with that error event (`agent_halted`); `after`
withholds a complete answer the same way (a 403 instead of the answer). The directory is reloaded on the
key refresh interval, and at once by this process's admin actions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from interlock.agents.loops import (
    LOOP_NOTE,
    MAX_PERIOD,
    LoopWatch,
    canonical_arguments,
    find_loop,
    history,
    stop_message,
)
from interlock.agents.runs import (
    MAX_CALLS,
    SEED_ROWS,
    CapHit,
    RunCaps,
    RunCounters,
    call_token,
    derive_run_id,
    over_cap,
    parse_call,
    seed_totals,
)
from interlock.audit.chain import AuditEvent
from interlock.auth.agents import AgentDirectory
from interlock.errors import Forbidden, Unavailable
from interlock.governance.counters import CountersUnavailable
from interlock.plugins.hooks import Caller, CutStream, Denied, Hook, HookContext, ModelRequest, ModelResponse, Outcome
from interlock.store.agent_queries import AgentRecord
from interlock.store.run_queries import RunStore
from interlock.types import ChatChunk, ChatRequest

log = logging.getLogger(__name__)

NAME = "agent-runs"
RUN_HEADER = "x-interlock-run-id"
SEED_WINDOW_S = 7 * 86400  # the ledger rows read to seed a run: at most this old


class RunHook(Hook[HookContext]):
    """Runs, their caps, the loop breaker and halts mid-stream (see the module docstring)."""

    name = NAME
    phase = "policy"

    def __init__(
        self,
        directory: AgentDirectory,
        counters: RunCounters,
        ledger: RunStore,
        audit: Callable[[AuditEvent], None] | None = None,
        *,
        fail_open: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._counters = counters
        self._ledger = ledger
        self._audit = audit
        self._fail_open = fail_open
        self._clock = clock
        self._caps: dict[str, tuple[str, RunCaps]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def caps_of(self, agent: AgentRecord) -> RunCaps:
        """The agent's parsed caps (parsed once per change)."""
        cached = self._caps.get(agent.id)
        if cached is None or cached[0] != agent.caps:
            cached = self._caps[agent.id] = (agent.caps, RunCaps.model_validate_json(agent.caps or "{}"))
        return cached[1]

    async def before(self, ctx: HookContext, request: ModelRequest) -> ModelRequest:
        """Set the run id; refuse a loop or a run over a cap; count the step."""
        agent_id = ctx.principal.agent_id
        if agent_id is None or not isinstance(request, ChatRequest):
            return request
        agent = self._directory.agents.get(agent_id)
        if agent is None:
            return request
        if not ctx.run_id:
            ctx.run_id = derive_run_id(agent_id, request)
        ctx.headers[RUN_HEADER] = ctx.run_id  # the agent learns its derived id (for outcomes, or to resend it)
        caps = self.caps_of(agent)
        calls = history(request)
        loop = find_loop(calls, caps.loop_repeats, caps.loop_cycles)
        if loop is not None:
            hit = CapHit("run_loop", stop_message(loop))
            self._stop(ctx.principal, agent, ctx.run_id, ctx.request_id, hit, tool=loop.calls[0])
        if caps.loop_repeats or caps.loop_cycles:  # the answer's calls are judged against it (agents.hook)
            ctx.notes[LOOP_NOTE] = LoopWatch(caps.loop_repeats, caps.loop_cycles, calls)
        if caps.counted():
            key = await self._count(ctx.principal, agent, caps, ctx.run_id, ctx.request_id)
            if key is not None:
                ctx.notes[NAME] = (key, caps.idle_s)
        return request

    async def _count(
        self, p: Caller, agent: AgentRecord, caps: RunCaps, run_id: str, request_id: str, **metadata: str
    ) -> str | None:
        """Count a step of the run; the run's key when it was admitted. Refuses (`Denied`) a run over a cap."""
        key, now = f"{agent.id}:{run_id}", self._clock()
        try:
            step = await self._counters.step(key, caps.max_steps, now, caps.idle_s)
            if step is None:
                rows = await self._ledger.run_rows(agent.id, run_id, now - SEED_WINDOW_S, SEED_ROWS)
                await self._counters.seed(key, seed_totals(rows, now, caps.idle_s), caps.idle_s)
                step = await self._counters.step(key, caps.max_steps, now, caps.idle_s)
            if step is None:
                raise CountersUnavailable(f"the counters of run {run_id} vanished twice")
        except CountersUnavailable as exc:
            self._unavailable(exc, request_id or run_id)
            return None
        hit = over_cap(caps, step.totals, now)
        if hit is not None:
            totals = step.totals
            self._stop(
                p, agent, run_id, request_id, hit, steps=totals.steps, spent_micros=totals.spend_micros, **metadata
            )
        return key if step.admitted else None

    def _unavailable(self, exc: CountersUnavailable, what: str) -> None:
        """Go on uncapped (fail open) or refuse with a 503 (fail closed) when the run state is unreachable."""
        if self._fail_open:
            log.warning("run counters unavailable (%s); %s runs uncapped (fail_open)", exc, what)
            return
        log.error("run counters unavailable (%s); refusing %s (fail closed)", exc, what)
        raise Unavailable(
            "the run's caps cannot be checked right now (the shared counters are unreachable); retry shortly",
            code="run_state_unavailable",
            headers={"Retry-After": "5"},
        ) from None

    def _stop(
        self, p: Caller, agent: AgentRecord, run_id: str, request_id: str, hit: CapHit, **metadata: str | int
    ) -> None:
        """Audit `agent.run_stopped` and refuse the request with the cap's code."""
        if self._audit is not None:
            self._audit(
                AuditEvent.denial(
                    "agent.run_stopped",
                    actor_id=p.key_id,
                    actor_name=p.name,
                    reason=hit.message,
                    target=agent.id,
                    request_id=request_id,
                    agent_id=agent.id,
                    owner_id=agent.owner_id,
                    run_id=run_id,
                    code=hit.code,
                    **metadata,
                )
            )
        raise Denied(hit.message, code=hit.code, status=403)

    # MCP calls ---------------------------------------------------------------------------------

    def _agent(self, p: Caller) -> AgentRecord | None:
        return self._directory.agents.get(p.agent_id) if p.agent_id else None

    async def mcp_step(self, p: Caller, run_id: str, tool: str) -> None:
        """Count an MCP tools/call as a step of its run; `Denied` naming the cap once the run is stopped."""
        agent = self._agent(p)
        if agent is not None and self.caps_of(agent).counted():
            await self._count(p, agent, self.caps_of(agent), run_id, "", via="mcp", tool=tool[:200])

    async def mcp_loop(self, p: Caller, run_id: str, tool: str, arguments: str) -> str | None:
        """Refuse (`Denied`, `run_loop`) an MCP call that would complete a loop of the run's recent MCP calls.

        The call as the run state keeps it, for `mcp_called` once it went through; None when nothing is kept.
        """
        agent = self._agent(p)
        if agent is None:
            return None
        caps = self.caps_of(agent)
        if not (caps.loop_repeats or caps.loop_cycles):
            return None
        try:
            recent = await self._counters.recent_calls(f"{agent.id}:{run_id}")
        except CountersUnavailable as exc:
            self._unavailable(exc, run_id)
            return None
        token = call_token(tool, canonical_arguments(arguments))
        watch = LoopWatch(caps.loop_repeats, caps.loop_cycles, [parse_call(c) for c in recent])
        loop = watch.would_loop(parse_call(token))
        if loop is not None:
            self._stop(p, agent, run_id, "", CapHit("run_loop", stop_message(loop)), via="mcp", tool=tool[:200])
        return token

    async def mcp_called(self, p: Caller, run_id: str, token: str) -> None:
        """Add an MCP call that went through to its run's recent calls (a failure is logged, not raised)."""
        agent = self._agent(p)
        if agent is None:
            return
        caps = self.caps_of(agent)
        keep = min(MAX_CALLS, max(caps.loop_repeats, caps.loop_cycles * MAX_PERIOD, 1))
        try:
            await self._counters.add_call(f"{agent.id}:{run_id}", token, keep, caps.idle_s)
        except CountersUnavailable as exc:
            log.warning("recording an MCP call of run %s failed (%s)", run_id, exc)

    def watches_stream(self, ctx: HookContext) -> bool:
        """Only an agent's stream can be halted (the gateway may relay the others)."""
        return ctx.principal.agent_id is not None

    async def on_batch(self, ctx: HookContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        """End the stream once a halt (or a suspension) covers the agent."""
        agent_id = ctx.principal.agent_id
        if agent_id is not None:
            try:
                self._directory.check(agent_id, self._clock())
            except Forbidden as exc:
                raise CutStream(exc) from None
        return batch

    async def after(self, ctx: HookContext, response: ModelResponse) -> ModelResponse:
        """Withhold a complete answer (and its tool calls) from an agent halted while the model worked."""
        agent_id = ctx.principal.agent_id
        if agent_id is not None:
            self._directory.check(agent_id, self._clock())
        return response

    def finish(self, ctx: HookContext, outcome: Outcome) -> None:
        """Add the step's cost and tokens to its run (in the background)."""
        noted = ctx.notes.get(NAME)
        if not isinstance(noted, tuple):
            return
        key, idle_s = noted
        cost, tokens = outcome.cost_micros, outcome.usage.prompt_tokens + outcome.usage.completion_tokens
        if cost or tokens:
            self._spawn(self._add(key, cost, tokens, idle_s))

    async def _add(self, key: str, cost: int, tokens: int, idle_s: float) -> None:
        try:
            await self._counters.add(key, cost, tokens, idle_s)
        except CountersUnavailable as exc:  # the run is re-seeded from the ledger once its counters are gone
            log.warning("adding a step to run %s failed (%s)", key, exc)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait for pending settlements, then release the counters."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._counters.close()
