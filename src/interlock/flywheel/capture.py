"""Capture: a request's text and its answer, stored for datasets when its scope opted in.

What is stored is what the model saw and what the client got, after the guardrails: the request as the
input guardrails rewrote it (redacted values stay `<TYPE>`, pseudonymised ones stay `<TYPE_N>`), and the
answer as the output guardrails passed it, with pseudonymised values that the guardrails restored for
the client masked again (`mask`), so a real value behind a pseudonym never reaches the capture. Never the
API key: a capture names the key by its id.

The hook only notes objects on the request path; `CaptureWriter` serialises and stores them in batches from
a background task (`finish` never blocks), and prunes by age and total size. Cached answers, failed
requests, embeddings and requests or answers over `max_chars` are not captured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from interlock.flywheel.examples import prompt_hash
from interlock.guardrails.transform import Pseudonyms
from interlock.plugins.hooks import Caller, Hook, HookContext, ModelRequest, ModelResponse, Outcome
from interlock.settings import CaptureSettings
from interlock.store.flywheel_queries import CaptureRecord, FlywheelStore
from interlock.types import ChatChunk, ChatRequest, ChatResponse

log = logging.getLogger(__name__)

NAME = "capture"
GUARDRAILS = "guardrails"  # the guardrail hook's name: its state in `ctx.notes` holds the request's pseudonyms
MAX_PENDING = 10_000  # captures waiting for the writer; more are dropped (and logged), never waited for


def wants(settings: CaptureSettings, principal: Caller, alias: str) -> bool:
    """Whether a request of `principal` to `alias` is in a scope that opted in to capture."""
    if not settings.enabled:
        return False

    def hit(values: list[str], value: str | None) -> bool:
        return bool(values) and ("*" in values or (value is not None and value in values))

    return (
        hit(settings.keys, principal.key_id)
        or hit(settings.agents, principal.agent_id)
        or hit(settings.teams, principal.team_id)
        or hit(settings.orgs, principal.org_id)
        or hit(settings.models, alias)
    )


def mask(text: str, placeholders: dict[str, str]) -> str:
    """`text` with every pseudonymised value (and its JSON-escaped form) put back behind its placeholder."""
    if not placeholders or not text:
        return text
    pairs: list[tuple[str, str]] = []
    for placeholder, value in placeholders.items():
        pairs.append((value, placeholder))
        escaped = orjson.dumps(value).decode()[1:-1]
        if escaped != value:
            pairs.append((escaped, placeholder))
    for value, placeholder in sorted(pairs, key=lambda p: -len(p[0])):  # longest first: no partial overlaps
        if value:
            text = text.replace(value, placeholder)
    return text


@dataclass(slots=True)
class _Call:
    id: str = ""
    name: str = ""
    args: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Noted:
    """What the hook keeps of one request until it ends."""

    request: ChatRequest
    content: list[str] = field(default_factory=list)
    calls: dict[int, _Call] = field(default_factory=dict)
    answered: bool = False

    def answer(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content) or None}
        if self.calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": "".join(c.args)}}
                for _, c in sorted(self.calls.items())
            ]
        return message


@dataclass(slots=True)
class Pending:
    """A finished request waiting for the writer (serialised off the request path)."""

    noted: _Noted
    placeholders: dict[str, str]
    request_id: str
    ts: float
    principal: tuple[str, str, str, str]  # key, team, org, agent ids ("" when none)
    run_id: str
    endpoint: str
    alias: str
    outcome: Outcome
    variant: str = ""

    def record(self, max_chars: int) -> CaptureRecord | None:
        """The row to store, or None when the request or the answer is over `max_chars`."""
        req = self.noted.request
        body = req.model_dump(mode="json", exclude_none=True, exclude={"stream", "stream_options"})
        raw = orjson.dumps(body).decode()
        request = mask(raw, self.placeholders)
        response = mask(orjson.dumps(self.noted.answer()).decode(), self.placeholders)
        if len(request) > max_chars or len(response) > max_chars:
            return None
        o = self.outcome
        key, team, org, agent = self.principal
        return CaptureRecord(
            request_id=self.request_id,
            ts=self.ts,
            key_id=key,
            team_id=team,
            org_id=org,
            agent_id=agent,
            subject=(req.user or "")[:256],
            run_id=self.run_id,
            endpoint=self.endpoint,
            alias=self.alias,
            deployment=o.deployment,
            provider=o.provider,
            variant=self.variant,
            request=request,
            response=response,
            prompt_tokens=o.usage.prompt_tokens,
            completion_tokens=o.usage.completion_tokens,
            cost_micros=o.cost_micros,
            latency_ms=o.latency_ms,
            prompt_hash=prompt_hash(body if request is raw else orjson.loads(request)),
            size=len(request.encode()) + len(response.encode()),
        )


class Capture(Hook[HookContext]):
    """Notes the (redacted) request and its (guarded) answer of requests in a capturing scope."""

    name = NAME
    endpoints = frozenset({"chat", "messages", "responses", "completions"})

    def __init__(self, settings: CaptureSettings, writer: CaptureWriter) -> None:
        self._settings = settings
        self._writer = writer

    async def before(self, ctx: HookContext, request: ModelRequest) -> ModelRequest:
        """Note the request, as the input guardrails left it, if its scope captures."""
        if isinstance(request, ChatRequest) and wants(self._settings, ctx.principal, ctx.alias):
            ctx.notes[NAME] = _Noted(request)
        return request

    async def after(self, ctx: HookContext, response: ModelResponse) -> ModelResponse:
        """Note a complete answer, as the client gets it."""
        noted = ctx.notes.get(NAME)
        if isinstance(noted, _Noted) and isinstance(response, ChatResponse) and response.choices:
            msg = response.choices[0].message
            noted.content = [msg.content or ""]
            for i, call in enumerate(msg.tool_calls or ()):
                noted.calls[i] = _Call(call.id, call.function.name, [call.function.arguments])
            noted.answered = True
        return response

    def watches_stream(self, ctx: HookContext) -> bool:
        """Only a stream that is being captured."""
        return isinstance(ctx.notes.get(NAME), _Noted)

    async def on_batch(self, ctx: HookContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        """Note a streamed answer's text and tool calls, as the client gets them."""
        noted = ctx.notes.get(NAME)
        if not isinstance(noted, _Noted):
            return batch
        for chunk in batch:
            for choice in chunk.choices[:1]:
                delta = choice.delta
                if delta.content:
                    noted.content.append(delta.content)
                for call in delta.tool_calls or ():
                    held = noted.calls.setdefault(call.index, _Call())
                    held.id = call.id or held.id
                    fn = call.function or {}
                    held.name = fn.get("name") or held.name
                    held.args.append(fn.get("arguments", ""))
                if choice.finish_reason is not None:
                    noted.answered = True
        return batch

    def finish(self, ctx: HookContext, outcome: Outcome) -> None:
        """Hand a successful, uncached request to the writer."""
        noted = ctx.notes.get(NAME)
        if not isinstance(noted, _Noted) or outcome.status != 200 or outcome.error is not None or outcome.cached:
            return
        if not noted.answered:
            return
        state = ctx.notes.get(GUARDRAILS)
        pseudonyms = getattr(state, "pseudonyms", None)
        placeholders = dict(pseudonyms.by_placeholder) if isinstance(pseudonyms, Pseudonyms) else {}
        p = ctx.principal
        self._writer.put(
            Pending(
                noted,
                placeholders,
                ctx.request_id,
                float(getattr(ctx, "ts", 0.0) or time.time()),
                (p.key_id or "", p.team_id or "", p.org_id or "", p.agent_id or ""),
                str(getattr(ctx, "run_id", "") or ""),
                ctx.endpoint,
                ctx.alias[:200],
                outcome,
                str(getattr(ctx, "variant", "") or ""),  # the alias's variant that answered (routing's variants)
            )
        )


class CaptureWriter:
    """Stores captures in batches from one background task, and prunes them by age and size."""

    def __init__(self, store: FlywheelStore, settings: CaptureSettings, max_pending: int = MAX_PENDING) -> None:
        self._store = store
        self._settings = settings
        self._max = max_pending
        self._pending: list[Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.dropped = 0
        self.skipped = 0  # over max_chars

    def put(self, item: Pending) -> None:
        """Queue a capture; never blocks (past `max_pending` it is dropped and counted)."""
        if len(self._pending) >= self._max:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("capture: %d captures dropped: the store does not keep up", self.dropped)
            return
        self._pending.append(item)

    def start(self) -> None:
        """Start the writer's loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="interlock-capture")

    async def _loop(self) -> None:
        interval = self._settings.flush_interval_ms / 1000
        next_prune = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self._settings.prune_interval_s
                    await self.prune()
            except Exception:
                log.exception("capture: writing or pruning captures failed; retrying at the next flush")

    async def flush(self) -> None:
        """Store every capture queued so far."""
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            limit = self._settings.max_chars
            rows = await asyncio.to_thread(lambda: [item.record(limit) for item in batch])
            kept = [r for r in rows if r is not None]
            self.skipped += len(rows) - len(kept)
            if kept:
                try:
                    await self._store.insert_captures(kept)
                except Exception:
                    log.exception("capture: %d captures were not stored (the store refused them)", len(kept))

    async def prune(self, now: float | None = None) -> int:
        """Delete captures past the retention period, then the oldest past the size cap; how many went."""
        s = self._settings
        before = (time.time() if now is None else now) - s.retention_days * 86400
        return await self._store.prune_captures(before, int(s.max_mb * 1024 * 1024))

    async def close(self) -> None:
        """Stop the loop and store what is queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("capture: storing the last captures at shutdown failed")
