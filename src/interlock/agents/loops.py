"""The loop breaker: a run that repeats the same tool call, or cycles through the same few calls, is stopped.

It judges the request's own history — the tool calls of the assistant turns already in `messages`, in
order — so it needs no state and holds across replicas. A call is its tool name and its arguments in
canonical JSON (keys sorted, no whitespace), so `{"a": 1, "b": 2}` and `{"b":2,"a":1}` are the same call,
and a retry with changed arguments is a different one.

The history *ends in a loop* when its last calls are back-to-back copies of one block of `period` calls:
- period 1 (the same call again and again) repeated at least `repeats` times (default 3: A A A);
- a period of 2 to `MAX_PERIOD` calls repeated at least `cycles` times (default 2: A B A B, A B C A B C).
Only the tail counts: an agent that looped and then moved on (A A A B) is not stopped. Either threshold
at 0 turns that check off. A legitimate polling loop (`get_status`, `wait`, `get_status`, `wait` with
the same arguments) looks like a cycle too: give such an agent `loop_cycles = 0` or a higher number.

Two places judge a call *before* it is made, with a `LoopWatch` (the calls so far plus the thresholds):
- a tool call in a model's answer that would complete a loop (the request's history, then the answer's
  calls in order) is removed from the answer like a call the tool policy refuses (`agents.hook`), so the
  agent never executes it; the next request, whose history would then end in the loop, is stopped too;
- an MCP tools/call, judged on the run's recent MCP calls that the run state keeps (`runs.add_call`).
A call that is removed or refused is not added: only calls that go through extend the sequence.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from interlock.types import ChatRequest

MAX_PERIOD = 4
LOOP_NOTE = "agent-runs.loops"  # the `LoopWatch` of a model request, in its hook context's notes


@dataclass(frozen=True, slots=True)
class Loop:
    """The block of calls the history ends repeating, and how many times."""

    calls: tuple[str, ...]  # tool names of one block, in order
    times: int

    def describe(self) -> str:
        """`'search' 3 times` or `the cycle 'a' -> 'b' 2 times` (names only, never arguments)."""
        if len(self.calls) == 1:
            return f"the same call to '{self.calls[0]}' {self.times} times in a row"
        cycle = " -> ".join(f"'{c}'" for c in self.calls)
        return f"the cycle {cycle} {self.times} times in a row"


def canonical_arguments(arguments: str) -> str:
    """The arguments as canonical JSON; text that is not JSON, stripped, as it is."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return arguments.strip()
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def history(request: ChatRequest) -> list[tuple[str, str]]:
    """Every tool call of the request's assistant turns, oldest first: (name, canonical arguments)."""
    return [
        (call.function.name, canonical_arguments(call.function.arguments))
        for m in request.messages
        if m.role == "assistant"
        for call in m.tool_calls or ()
    ]


def _repeats(calls: Sequence[tuple[str, str]], period: int) -> int:
    """How many back-to-back copies of the last `period` calls end the sequence."""
    n = len(calls)
    if n < period:
        return 0
    times = 1
    while (times + 1) * period <= n and all(
        calls[n - 1 - i] == calls[n - 1 - i - times * period] for i in range(period)
    ):
        times += 1
    return times


def find_loop(calls: Sequence[tuple[str, str]], repeats: int = 3, cycles: int = 2) -> Loop | None:
    """The loop the calls end in (see the module docstring), or None."""
    if repeats > 0:
        times = _repeats(calls, 1)
        if times >= repeats:
            return Loop((calls[-1][0],), times)
    if cycles > 0:
        for period in range(2, MAX_PERIOD + 1):
            block = calls[-period:]
            if len(set(block)) < 2:  # a block of one repeated call is the period-1 case
                continue
            times = _repeats(calls, period)
            if times >= cycles:
                return Loop(tuple(name for name, _ in block), times)
    return None


def stop_message(loop: Loop) -> str:
    """What a run stopped for a loop is told (`run_loop`)."""
    return (
        f"the run repeats itself: {loop.describe()} with the same arguments, so it is stopped; start the task "
        "afresh or change the approach, or ask the agent's owner to adjust loop_repeats / loop_cycles"
    )


def removal_reason(loop: Loop) -> str:
    """Why a call that would complete a loop was not passed on."""
    return (
        f"it would make the run repeat itself ({loop.describe()} with the same arguments, run_loop); change "
        "the approach or the arguments, or ask the agent's owner to adjust loop_repeats / loop_cycles"
    )


@dataclass(slots=True)
class LoopWatch:
    """The calls of a run so far and the agent's thresholds: judges each further call before it is made."""

    repeats: int
    cycles: int
    calls: list[tuple[str, str]] = field(default_factory=list)

    def would_loop(self, call: tuple[str, str]) -> Loop | None:
        """The loop `call` would complete, or None."""
        return find_loop([*self.calls, call], self.repeats, self.cycles)

    def add(self, call: tuple[str, str]) -> None:
        """`call` went through: it extends the sequence."""
        self.calls.append(call)
