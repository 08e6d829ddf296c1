"""Shadow-agent discovery: keys not registered as agents whose traffic looks agentic.

`TrafficSignals` (an output-phase hook) notes, for every request of a key that is not an agent's, a few
facts about its shape — never its text: whether it offers tools, whether it feeds tool results back,
whether it continues a conversation the key sent before (several turns behind a prefix already seen:
an agent stepping through a task), whether the answer called a tool, and which agent framework its
User-Agent names. Counts are kept per key and hour in memory and added to the store's `traffic_signals`
every `flush_s` seconds, so every replica's traffic adds up; the conversation prefixes are remembered in
memory only (a bounded set per key), so "continued" counts what one replica saw. Rows older than
`RETENTION_H` (90 days) are pruned hourly.

`assess` turns a key's rows into a verdict with the evidence. Strong signals (2 points each): tool
results fed back (the clearest sign: something executed a tool the model asked for), tool calls answered,
an agent framework's User-Agent. Weak signals (1 point each), because a chat application shows them too:
tool definitions on most requests, step-like continuation on many. A key scoring `SUSPECT_MIN_SCORE`
(one strong or two weak signals) is a suspect. The report (`admin.shadow`) lists suspects with their
evidence; one command registers a key as an agent (`interlock agents adopt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from interlock.plugins.hooks import Hook, HookContext, ModelRequest, ModelResponse, Outcome
from interlock.store.signal_queries import SignalRow
from interlock.types import ChatRequest, ChatResponse

log = logging.getLogger(__name__)

NAME = "shadow"
PREFIXES_PER_KEY = 512  # conversation prefixes remembered per key (oldest forgotten first)
KEYS_TRACKED = 10_000  # keys whose prefixes are remembered (least recently seen forgotten first)
RETENTION_H = 90 * 24  # signals older than this are pruned (hourly)

# Agent frameworks, by the product tokens their HTTP clients put in User-Agent (matched case-insensitively).
# The plain `openai`/`anthropic` SDK tokens are not here: every application sends those.
FRAMEWORKS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("langchain", r"langchain|langgraph|langsmith"),
        ("llamaindex", r"llama[-_ ]?index"),
        ("autogen", r"autogen|ag2\b"),
        ("crewai", r"crew[-_ ]?ai"),
        ("openai-agents", r"openai[-_]agents|agents[-_]sdk|\bagents/python\b"),
        ("pydantic-ai", r"pydantic[-_]ai"),
        ("smolagents", r"smolagents"),
        ("haystack", r"haystack"),
        ("semantic-kernel", r"semantic[-_ ]?kernel"),
        ("dspy", r"\bdspy\b"),
        ("letta", r"\bletta\b|memgpt"),
        ("agno", r"\bagno\b|phidata"),
        ("mastra", r"\bmastra\b"),
        ("vercel-ai", r"\bai-sdk\b|vercel[-_ ]ai"),
        ("claude-code", r"claude[-_ ]?code|claude-cli"),
        ("codex", r"\bcodex[-_ ]?(cli|exec|tui|vscode)"),
        ("aider", r"\baider\b"),
        ("goose", r"\bgoose\b"),
        ("openhands", r"openhands|opendevin"),
    )
)


@functools.lru_cache(maxsize=4096)
def framework_of(user_agent: str) -> str:
    """The agent framework a User-Agent names ("" when none); remembered, as clients send the same few."""
    for name, pattern in FRAMEWORKS:
        if pattern.search(user_agent):
            return name
    return ""


@dataclass(frozen=True, slots=True)
class Shape:
    """What one request looks like (no text)."""

    with_tools: bool
    with_tool_results: bool
    turns: int  # messages after the system prompt
    prefix: str  # a digest of the system prompt and the first user message ("" when there is none)


def shape_of(request: ChatRequest) -> Shape:
    """The request's shape: tools offered, tool results fed back, turns, the conversation's prefix digest."""
    system = [m.text() for m in request.messages if m.role in ("system", "developer")]
    others = [m for m in request.messages if m.role not in ("system", "developer")]
    first_user = next((m.text() for m in others if m.role == "user"), None)
    prefix = ""
    if first_user is not None:
        digest = hashlib.blake2b(digest_size=12)
        for part in (*system, first_user):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        prefix = digest.hexdigest()
    results = any(m.role == "tool" for m in others)
    return Shape(bool(request.tools), results, len(others), prefix)


@dataclass(slots=True)
class _Counts:
    requests: int = 0
    with_tools: int = 0
    with_tool_results: int = 0
    continued: int = 0
    tool_call_answers: int = 0
    framework: str = ""


@dataclass(slots=True)
class _Pending:
    shape: Shape
    framework: str
    continued: bool
    tool_calls: bool = False


class SignalSink(Protocol):
    """Where the counts go (the store)."""

    async def add_traffic_signals(self, rows: list[SignalRow]) -> None: ...
    async def prune_traffic_signals(self, before_hour: int) -> int: ...


@dataclass(slots=True)
class SignalBuffer:
    """Counts per (key, hour) since the last flush, and the prefixes seen per key."""

    counts: dict[tuple[str, int], _Counts] = field(default_factory=dict)
    prefixes: OrderedDict[str, OrderedDict[str, None]] = field(default_factory=OrderedDict)

    def seen_before(self, key_id: str, prefix: str) -> bool:
        """Whether `key_id` sent this conversation prefix before (and remember it)."""
        known = self.prefixes.get(key_id)
        if known is None:
            known = self.prefixes[key_id] = OrderedDict()
            if len(self.prefixes) > KEYS_TRACKED:
                self.prefixes.popitem(last=False)
        else:
            self.prefixes.move_to_end(key_id)
        if prefix in known:
            known.move_to_end(prefix)
            return True
        known[prefix] = None
        if len(known) > PREFIXES_PER_KEY:
            known.popitem(last=False)
        return False

    def add(self, key_id: str, ts: float, pending: _Pending) -> None:
        """Count one finished request."""
        c = self.counts.setdefault((key_id, int(ts // 3600)), _Counts())
        c.requests += 1
        c.with_tools += pending.shape.with_tools
        c.with_tool_results += pending.shape.with_tool_results
        c.continued += pending.continued
        c.tool_call_answers += pending.tool_calls
        c.framework = pending.framework or c.framework

    def drain(self) -> list[SignalRow]:
        """The rows to add to the store, emptying the counts."""
        rows = [
            SignalRow(
                k, h, c.requests, c.with_tools, c.with_tool_results, c.continued, c.tool_call_answers, c.framework
            )
            for (k, h), c in self.counts.items()
        ]
        self.counts = {}
        return rows


class TrafficSignals(Hook[HookContext]):
    """Notes the shape of non-agent keys' requests (see the module docstring); flushes counts periodically."""

    name = NAME

    def __init__(self, sink: SignalSink, flush_s: float = 30.0) -> None:
        self._sink = sink
        self._flush_s = flush_s
        self.buffer = SignalBuffer()
        self._task: asyncio.Task[None] | None = None

    async def before(self, ctx: HookContext, request: ModelRequest) -> ModelRequest:
        """Note the request's shape (chat-shaped requests of keys that are not agents only)."""
        p = ctx.principal
        if p.key_id is None or p.agent_id is not None or not isinstance(request, ChatRequest):
            return request
        shape = shape_of(request)
        seen = bool(shape.prefix) and self.buffer.seen_before(p.key_id, shape.prefix)
        continued = seen and shape.turns >= 3
        ctx.notes[NAME] = _Pending(shape, framework_of(ctx.user_agent), continued)
        return request

    async def after(self, ctx: HookContext, response: ModelResponse) -> ModelResponse:
        """Note whether the answer called a tool."""
        pending = ctx.notes.get(NAME)
        if isinstance(pending, _Pending) and isinstance(response, ChatResponse):
            pending.tool_calls = any(c.message.tool_calls for c in response.choices)
        return response

    def finish(self, ctx: HookContext, outcome: Outcome) -> None:
        """Count the request (a streamed answer's tool calls are read from its tally)."""
        pending = ctx.notes.get(NAME)
        if not isinstance(pending, _Pending) or ctx.principal.key_id is None:
            return
        tally = getattr(ctx, "tally", None)
        if tally is not None and getattr(tally, "tool_calls", False):
            pending.tool_calls = True
        self.buffer.add(ctx.principal.key_id, time.time(), pending)

    async def flush(self) -> None:
        """Add the counts so far to the store (kept for the next flush if the store refuses)."""
        rows = self.buffer.drain()
        if not rows:
            return
        try:
            await self._sink.add_traffic_signals(rows)
        except Exception as exc:  # the store is down: keep the counts for the next flush
            log.warning("traffic signals not written (%s); kept for the next flush", type(exc).__name__)
            for r in rows:
                c = self.buffer.counts.setdefault((r.key_id, r.hour), _Counts())
                c.requests += r.requests
                c.with_tools += r.with_tools
                c.with_tool_results += r.with_tool_results
                c.continued += r.continued
                c.tool_call_answers += r.tool_call_answers
                c.framework = c.framework or r.framework

    def start(self) -> None:
        """Flush every `flush_s` seconds in the background."""

        async def loop() -> None:
            pruned = 0.0
            while True:
                await asyncio.sleep(self._flush_s)
                await self.flush()
                if time.time() - pruned >= 3600:
                    pruned = time.time()
                    with contextlib.suppress(Exception):  # the store is down: prune next hour
                        await self._sink.prune_traffic_signals(int(pruned // 3600) - RETENTION_H)

        self._task = asyncio.create_task(loop(), name="interlock-traffic-signals")

    async def close(self) -> None:
        """Stop, writing what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


SUSPECT_MIN_SCORE = 2  # one strong signal, or two weak ones


@dataclass(frozen=True, slots=True)
class Assessment:
    """A key's traffic, summed, and why it looks agentic (empty `evidence`: it does not)."""

    key_id: str
    requests: int
    with_tools: int
    with_tool_results: int
    continued: int
    tool_call_answers: int
    frameworks: tuple[str, ...]
    first_hour: int
    last_hour: int
    evidence: tuple[str, ...]
    score: int  # strong signals count 2, weak ones 1


def _share(n: int, of: int) -> str:
    return f"{n} of {of} requests ({100 * n / of:.0f}%)"


def assess(key_id: str, rows: Iterable[SignalRow]) -> Assessment:
    """Sum a key's rows and name the evidence that it is an agent."""
    rows = list(rows)
    req = sum(r.requests for r in rows)
    tools = sum(r.with_tools for r in rows)
    results = sum(r.with_tool_results for r in rows)
    cont = sum(r.continued for r in rows)
    calls = sum(r.tool_call_answers for r in rows)
    frameworks = tuple(sorted({r.framework for r in rows if r.framework}))
    strong: list[str] = []
    weak: list[str] = []
    if results:
        strong.append(f"feeds tool results back to the model: {_share(results, req)}")
    if calls:
        strong.append(f"the model answered with tool calls: {_share(calls, req)}")
    if frameworks:
        strong.append(f"User-Agent of an agent framework: {', '.join(frameworks)}")
    if tools >= 3 and tools * 2 >= req:
        weak.append(f"offers tool definitions: {_share(tools, req)}")
    if cont >= 5 and cont * 4 >= req:
        weak.append(f"steps through conversations (3+ turns after a prefix it sent before): {_share(cont, req)}")
    hours = [r.hour for r in rows] or [0]
    score = 2 * len(strong) + len(weak)
    evidence = (*strong, *weak)
    return Assessment(key_id, req, tools, results, cont, calls, frameworks, min(hours), max(hours), evidence, score)


def suspects(rows: Iterable[SignalRow], exclude: set[str]) -> list[Assessment]:
    """The keys (other than `exclude`: agents' keys, revoked keys) whose traffic looks agentic, strongest first."""
    by_key: dict[str, list[SignalRow]] = {}
    for r in rows:
        if r.key_id not in exclude:
            by_key.setdefault(r.key_id, []).append(r)
    found = [a for k, rs in by_key.items() if (a := assess(k, rs)).score >= SUSPECT_MIN_SCORE]
    return sorted(found, key=lambda a: (-a.score, -a.requests, a.key_id))
