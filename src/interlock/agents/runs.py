"""Runs: the steps (requests) of one agent task, grouped, counted and capped.

**The run id.** The `x-interlock-run-id` header when the caller sends one. Otherwise it is derived from the
conversation's stable prefix, which every step of one task repeats: `derive_run_id` hashes (SHA-256) the
canonical JSON of `[agent id, the system and developer messages before the first user message, the first
user message, the sorted names of the tools offered]` and keeps 32 hex digits: `auto_<32 hex>`. So the
steps of one task share a run while a new task (another first user message) starts another. Two tasks
with the very same opening are one run, and a step whose system prompt or tool names change (a handoff
in a multi-agent framework; Responses' `instructions`, which `previous_response_id` does not carry over,
left out) starts another: send the header when that matters. The id is set on the request's context, so
the ledger row carries it (`usage.run_id`), as with the header, and it is sent back in the answer's
`x-interlock-run-id` header.

**The run's state** — steps, spend (micro-dollars), tokens, the time of its first and of its last step —
lives in the shared counters (`RunCounters`: in this process, or in Redis for several replicas, one hash
per run). A run ends when it has been idle for `idle_s` (its counters expire); the next step with that
id starts a new run. A run the counters do not know (its first step, or counters lost) is seeded from the
ledger (`seed_totals`): its rows back to the first gap longer than `idle_s`.

**Caps** (`RunCaps`, per agent): a step is admitted while the run has taken fewer than `max_steps` steps
(checked and counted atomically, so concurrent steps on several replicas cannot overshoot), has spent
less than `max_spend_micros` and used fewer than `max_tokens`, and began less than `max_seconds` ago.
Spend and tokens are known only after a step: the step that crosses one of those caps completes, and
the next one is refused. Per-run caps bound one run; a client that changes run ids at will is bounded by
the agent's budgets and the spend-velocity guard, not by these.

**MCP calls** (`/mcp` tools/call) are steps of their run too (see `run_hook.RunHook.mcp_step`). They carry
no conversation whose history the loop breaker could read, so the run state also keeps each run's recent
MCP calls (`add_call` / `recent_calls`): at most `MAX_CALLS` of them, each as its tool name and a hash of
its canonical arguments (never the values), expiring with the run (`idle_s`). Each MCP call leaves a ledger
row (`mcp.ledger`); one that reached its upstream server counts as a step when a run is re-seeded (the
recent calls themselves are not re-seeded: the loop breaker starts afresh on a run whose state was lost).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from interlock.governance.counters import CountersUnavailable
from interlock.types import ChatRequest

DERIVED_PREFIX = "auto_"
SEED_ROWS = 10_000  # at most this many ledger rows are read to seed a run
MAX_CALLS = 256  # the recent MCP calls kept per run for the loop breaker


class RunCaps(BaseModel):
    """Per-run caps and loop thresholds of an agent (stored as JSON on the agent; unset: no cap)."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int | None = Field(default=None, ge=1, description="requests per run")
    max_spend_micros: int | None = Field(default=None, ge=1, description="micro-dollars per run")
    max_tokens: int | None = Field(default=None, ge=1, description="prompt + completion tokens per run")
    max_seconds: float | None = Field(default=None, gt=0, description="wall time from the run's first step")
    idle_s: float = Field(default=3600, gt=0, le=7 * 86400, description="a run idle this long has ended")
    loop_repeats: int = Field(default=3, ge=0, description="the same tool call this many times in a row; 0: off")
    loop_cycles: int = Field(default=2, ge=0, description="a cycle of 2-4 calls this many times; 0: off")

    def counted(self) -> bool:
        """Whether any cap needs the run's counters."""
        return any(v is not None for v in (self.max_steps, self.max_spend_micros, self.max_tokens, self.max_seconds))


def derive_run_id(agent_id: str, request: ChatRequest) -> str:
    """The run id of a request that names none (see the module docstring for exactly what is hashed)."""
    system: list[str] = []
    first_user = ""
    for m in request.messages:
        if m.role == "user":
            first_user = m.text()
            break
        if m.role in ("system", "developer"):
            system.append(m.text())
    tools = sorted(t.function.name for t in request.tools or ())
    prefix = json.dumps([agent_id, system, first_user, tools], ensure_ascii=False, separators=(",", ":"))
    return DERIVED_PREFIX + hashlib.sha256(prefix.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class RunTotals:
    """What a run has used so far."""

    steps: int
    spend_micros: int
    tokens: int
    started: float
    last: float


@dataclass(frozen=True, slots=True)
class CapHit:
    """The cap a run has reached: its error code and what to tell the agent."""

    code: str  # run_step_cap, run_spend_cap, run_token_cap, run_time_cap
    message: str


_ADVICE = (
    "this run is stopped; start a new task (a new x-interlock-run-id) or ask the agent's owner to raise the cap "
    "(interlock agents caps)"
)


def over_cap(caps: RunCaps, totals: RunTotals, now: float) -> CapHit | None:
    """The first cap the run has reached before taking another step, or None."""
    if caps.max_steps is not None and totals.steps >= caps.max_steps:
        return CapHit("run_step_cap", f"the run has reached its cap of {caps.max_steps} steps (max_steps); {_ADVICE}")
    if caps.max_spend_micros is not None and totals.spend_micros >= caps.max_spend_micros:
        cap = f"${caps.max_spend_micros / 1e6:.6f}".rstrip("0").rstrip(".")
        return CapHit("run_spend_cap", f"the run has reached its cap of {cap} (max_spend_micros); {_ADVICE}")
    if caps.max_tokens is not None and totals.tokens >= caps.max_tokens:
        return CapHit(
            "run_token_cap", f"the run has reached its cap of {caps.max_tokens} tokens (max_tokens); {_ADVICE}"
        )
    if caps.max_seconds is not None and now - totals.started >= caps.max_seconds:
        return CapHit(
            "run_time_cap",
            f"the run has reached its cap of {caps.max_seconds:g} s from its first step (max_seconds); {_ADVICE}",
        )
    return None


def seed_totals(rows: Sequence[tuple[float, int, int, bool]], now: float, idle_s: float) -> RunTotals:
    """A run's totals from its ledger rows (ts, cost, tokens, reached a model), newest first.

    Rows count back to the first gap longer than `idle_s` (an earlier run with the same id); a step is a
    row that reached a model. No recent row: a new run starting now.
    """
    steps = spend = tokens = 0
    started = last = now
    newer = now
    for i, (ts, cost, used, step) in enumerate(rows):
        if newer - ts > idle_s:
            break
        if i == 0:
            last = ts
        steps, spend, tokens, started, newer = steps + int(step), spend + cost, tokens + used, ts, ts
    return RunTotals(steps, spend, tokens, started, last)


@dataclass(frozen=True, slots=True)
class Step:
    """The result of asking to take a step: the totals before it, and whether it was admitted (counted)."""

    totals: RunTotals
    admitted: bool


class RunCounters(Protocol):
    """The runs' shared state: one record per run key, expiring `ttl_s` after its last step."""

    async def step(self, key: str, max_steps: int | None, now: float, ttl_s: float) -> Step | None:
        """Count a step unless the run has `max_steps` already (atomic); None: unknown run, seed it."""
        ...

    async def seed(self, key: str, totals: RunTotals, ttl_s: float) -> None:
        """Create the run's record from `totals` unless it exists (another replica may have won)."""
        ...

    async def add(self, key: str, spend_micros: int, tokens: int, ttl_s: float) -> None:
        """Add a settled step's cost and tokens (nothing if the record is gone: it is re-seeded)."""
        ...

    async def recent_calls(self, key: str) -> list[str]:
        """The run's recent MCP calls (`call_token`s), oldest first; none for an unknown run."""
        ...

    async def add_call(self, key: str, call: str, keep: int, ttl_s: float) -> None:
        """Append an MCP call to the run's recent calls, keeping the last `keep`, expiring `ttl_s` from now."""
        ...

    async def close(self) -> None: ...


def call_token(name: str, canonical_arguments: str) -> str:
    """One call as the run state keeps it: a hash of its canonical arguments, then its tool name."""
    return hashlib.sha256(canonical_arguments.encode()).hexdigest()[:16] + ":" + name[:200]


def parse_call(token: str) -> tuple[str, str]:
    """(tool name, arguments hash) of a `call_token`: the loop breaker compares these."""
    digest, _, name = token.partition(":")
    return name, digest


@dataclass(slots=True)
class _Record:
    totals: RunTotals
    expires: float


@dataclass(slots=True)
class LocalRunCounters:
    """Run state in this process (one replica): every operation runs without awaiting, so atomic."""

    clock: Any = time.time
    _runs: dict[str, _Record] = field(default_factory=dict)
    _expiry: list[tuple[float, str]] = field(default_factory=list)  # a heap of (expiry, key), lazily purged
    _calls: dict[str, tuple[deque[str], float]] = field(default_factory=dict)  # key -> (recent calls, expiry)
    _calls_expiry: list[tuple[float, str]] = field(default_factory=list)

    def _get(self, key: str) -> _Record | None:
        now = float(self.clock())
        while self._expiry and self._expiry[0][0] <= now:
            _, old = heapq.heappop(self._expiry)
            record = self._runs.get(old)
            if record is not None and record.expires <= now:
                del self._runs[old]
        record = self._runs.get(key)
        return record if record is not None and record.expires > now else None

    def _touch(self, key: str, record: _Record, ttl_s: float) -> None:
        record.expires = float(self.clock()) + ttl_s
        self._runs[key] = record
        heapq.heappush(self._expiry, (record.expires, key))

    async def step(self, key: str, max_steps: int | None, now: float, ttl_s: float) -> Step | None:
        """Count a step unless the run is at `max_steps`."""
        record = self._get(key)
        if record is None:
            return None
        before = record.totals
        if max_steps is not None and before.steps >= max_steps:
            return Step(before, False)
        record.totals = replace(before, steps=before.steps + 1, last=now)
        self._touch(key, record, ttl_s)
        return Step(before, True)

    async def seed(self, key: str, totals: RunTotals, ttl_s: float) -> None:
        """Create the record unless it exists."""
        if self._get(key) is None:
            self._touch(key, _Record(totals, 0.0), ttl_s)

    async def add(self, key: str, spend_micros: int, tokens: int, ttl_s: float) -> None:
        """Add cost and tokens to a known run."""
        record = self._get(key)
        if record is not None:
            t = record.totals
            record.totals = replace(t, spend_micros=t.spend_micros + spend_micros, tokens=t.tokens + tokens)
            self._touch(key, record, ttl_s)

    def _recent(self, key: str) -> deque[str] | None:
        now = float(self.clock())
        while self._calls_expiry and self._calls_expiry[0][0] <= now:
            _, old = heapq.heappop(self._calls_expiry)
            found = self._calls.get(old)
            if found is not None and found[1] <= now:
                del self._calls[old]
        found = self._calls.get(key)
        return found[0] if found is not None and found[1] > now else None

    async def recent_calls(self, key: str) -> list[str]:
        """The run's recent calls, oldest first."""
        return list(self._recent(key) or ())

    async def add_call(self, key: str, call: str, keep: int, ttl_s: float) -> None:
        """Append a call, keeping the last `keep`."""
        calls = self._recent(key)
        if calls is None or calls.maxlen != keep:
            calls = deque(calls or (), maxlen=keep)
        calls.append(call)
        expires = float(self.clock()) + ttl_s
        self._calls[key] = (calls, expires)
        heapq.heappush(self._calls_expiry, (expires, key))

    async def close(self) -> None:
        """Nothing to release."""


# KEYS: the run's hash. ARGV: max steps (-1: none), now, ttl in ms. Returns {known, admitted, fields...}.
_STEP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local v = redis.call('HMGET', KEYS[1], 'steps', 'spend', 'tokens', 'started', 'last')
local max = tonumber(ARGV[1])
if max >= 0 and tonumber(v[1]) >= max then return {1, 0, v[1], v[2], v[3], v[4], v[5]} end
redis.call('HINCRBY', KEYS[1], 'steps', 1)
redis.call('HSET', KEYS[1], 'last', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, 1, v[1], v[2], v[3], v[4], v[5]}
"""

# KEYS: the run's hash. ARGV: steps, spend, tokens, started, last, ttl in ms.
_SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'steps', ARGV[1], 'spend', ARGV[2], 'tokens', ARGV[3], 'started', ARGV[4], 'last', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
"""

# KEYS: the run's hash. ARGV: spend, tokens, ttl in ms.
_ADD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'spend', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


# KEYS: the run's list of recent calls. ARGV: the call, how many to keep, ttl in ms.
_ADD_CALL = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisRunCounters:
    """Run state in Redis, shared by every replica; each operation is one Lua script, so atomic."""

    def __init__(self, url: str, prefix: str = "interlock:") -> None:
        import redis.asyncio as redis

        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._prefix = prefix + "run:"
        self._calls_prefix = prefix + "runcalls:"  # a list per run: its recent MCP calls
        self._step = self._redis.register_script(_STEP)
        self._seed = self._redis.register_script(_SEED)
        self._add = self._redis.register_script(_ADD)
        self._add_call = self._redis.register_script(_ADD_CALL)

    async def _run(self, script: Any, key: str, args: list[Any]) -> Any:
        try:
            return await script(keys=[self._prefix + key], args=args)
        except self._errors as exc:
            raise CountersUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def _calls_key(self, key: str) -> str:
        return self._calls_prefix + key

    async def step(self, key: str, max_steps: int | None, now: float, ttl_s: float) -> Step | None:
        """Count a step unless the run is at `max_steps` (one script)."""
        out = await self._run(self._step, key, [-1 if max_steps is None else max_steps, now, int(ttl_s * 1000)])
        if not int(out[0]):
            return None
        steps, spend, tokens, started, last = out[2:7]
        totals = RunTotals(int(steps), int(spend), int(tokens), float(started), float(last))
        return Step(totals, bool(int(out[1])))

    async def seed(self, key: str, totals: RunTotals, ttl_s: float) -> None:
        """Create the run's hash unless another replica did."""
        t = totals
        await self._run(
            self._seed, key, [t.steps, t.spend_micros, t.tokens, repr(t.started), repr(t.last), int(ttl_s * 1000)]
        )

    async def add(self, key: str, spend_micros: int, tokens: int, ttl_s: float) -> None:
        """Add a settled step's cost and tokens."""
        await self._run(self._add, key, [spend_micros, tokens, int(ttl_s * 1000)])

    async def recent_calls(self, key: str) -> list[str]:
        """The run's list of recent calls (one LRANGE)."""
        try:
            found = await self._redis.lrange(self._calls_key(key), 0, -1)
        except self._errors as exc:
            raise CountersUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return [c.decode() if isinstance(c, bytes) else str(c) for c in found]

    async def add_call(self, key: str, call: str, keep: int, ttl_s: float) -> None:
        """Append a call and trim the list (one script)."""
        try:
            await self._add_call(keys=[self._calls_key(key)], args=[call, keep, int(ttl_s * 1000)])
        except self._errors as exc:
            raise CountersUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def open_run_counters(redis_url: str, prefix: str = "interlock:") -> RunCounters:
    """Redis run state for a redis:// URL (several replicas), else state in this process."""
    return RedisRunCounters(redis_url, prefix) if redis_url else LocalRunCounters()
