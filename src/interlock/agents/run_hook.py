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

from interlock.agents.loops import find_loop, history
from interlock.agents.runs import SEED_ROWS, CapHit, RunCaps, RunCounters, derive_run_id, over_cap, seed_totals
from interlock.audit.chain import AuditEvent
from interlock.auth.agents import AgentDirectory
from interlock.errors import Forbidden, Unavailable
from interlock.governance.counters import CountersUnavailable
from interlock.plugins.hooks import CutStream, Denied, Hook, HookContext, ModelRequest, ModelResponse, Outcome
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
        loop = find_loop(history(request), caps.loop_repeats, caps.loop_cycles)
        if loop is not None:
            self._stop(
                ctx,
                agent,
                CapHit(
                    "run_loop",
                    f"the run repeats itself: {loop.describe()} with the same arguments, so it is stopped; "
                    "start the task afresh or change the approach, or ask the agent's owner to adjust "
                    "loop_repeats / loop_cycles",
                ),
                tool=loop.calls[0],
            )
        if caps.counted():
            await self._count(ctx, agent, caps)
        return request

    async def _count(self, ctx: HookContext, agent: AgentRecord, caps: RunCaps) -> None:
        key, now = f"{agent.id}:{ctx.run_id}", self._clock()
        try:
            step = await self._counters.step(key, caps.max_steps, now, caps.idle_s)
            if step is None:
                rows = await self._ledger.run_rows(agent.id, ctx.run_id, now - SEED_WINDOW_S, SEED_ROWS)
                await self._counters.seed(key, seed_totals(rows, now, caps.idle_s), caps.idle_s)
                step = await self._counters.step(key, caps.max_steps, now, caps.idle_s)
            if step is None:
                raise CountersUnavailable(f"the counters of run {ctx.run_id} vanished twice")
        except CountersUnavailable as exc:
            if self._fail_open:
                log.warning("run counters unavailable (%s); %s runs uncapped (fail_open)", exc, ctx.request_id)
                return
            log.error("run counters unavailable (%s); refusing %s (fail closed)", exc, ctx.request_id)
            raise Unavailable(
                "the run's caps cannot be checked right now (the shared counters are unreachable); retry shortly",
                code="run_state_unavailable",
                headers={"Retry-After": "5"},
            ) from None
        if step.admitted:
            ctx.notes[NAME] = (key, caps.idle_s)
        hit = over_cap(caps, step.totals, now)
        if hit is not None:
            self._stop(ctx, agent, hit, steps=step.totals.steps, spent_micros=step.totals.spend_micros)

    def _stop(self, ctx: HookContext, agent: AgentRecord, hit: CapHit, **metadata: str | int) -> None:
        """Audit `agent.run_stopped` and refuse the request with the cap's code."""
        if self._audit is not None:
            p = ctx.principal
            self._audit(
                AuditEvent.denial(
                    "agent.run_stopped",
                    actor_id=p.key_id,
                    actor_name=p.name,
                    reason=hit.message,
                    target=agent.id,
                    request_id=ctx.request_id,
                    agent_id=agent.id,
                    owner_id=agent.owner_id,
                    run_id=ctx.run_id,
                    code=hit.code,
                    **metadata,
                )
            )
        raise Denied(hit.message, code=hit.code, status=403)

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
