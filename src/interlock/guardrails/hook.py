"""The guardrail hook: scans every request before routing and every answer before the client gets it.

Input (phase "input", so before the route and the residency rule): every message's text parts, the
system prompt, tool results and tool-call arguments, and embedding inputs. Tool results are also
screened as untrusted content (prompt injection, hidden unicode, exfiltration links). What is found
is acted on as the request's effective policy says (`policy.Effective`): the strongest action wins
for the request (block > restrict > redact/pseudonymise > log), and every span is redacted or
pseudonymised by its own entity's action.

Output: complete answers (text and tool-call arguments) are scanned, then pseudonyms restored. A
streamed answer's text goes through a `HoldBack` window of `hold_back_chars`; streamed tool-call
arguments are held whole until the stream finishes (a client cannot act on half a tool call). A
blocked stream ends with an error event, and no byte of the blocked entity is sent.

Untrusted-content findings (`PROMPT_INJECTION`, `HIDDEN_UNICODE`, `EXFILTRATION_LINK`) are kept per
request for provenance (`Verdict.untrusted`, in `ctx.notes["guardrails"]`) and acted on like any other
type (the default logs them; a policy may block or redact them). Every verdict (guardrail, direction,
action, entity types and counts, request id; never a value) is audited and counted. A pseudonymised
request is never cached: its answer holds the real values.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from interlock.audit.chain import AuditEvent
from interlock.guardrails.findings import Finding
from interlock.guardrails.policy import Effective, PolicyBook
from interlock.guardrails.ports import Observer, Scanners
from interlock.guardrails.scanner import resolve_overlaps
from interlock.guardrails.stream import StreamScan
from interlock.guardrails.transform import HoldBack, Pseudonyms, redacted, rewrite
from interlock.guardrails.verdict import Verdict, describe, flat
from interlock.plugins.hooks import CutStream, Denied, Hook, HookContext, ModelRequest, ModelResponse, Outcome
from interlock.types import Batch, ChatChunk, ChatResponse, EmbeddingRequest, Message, TextPart

log = logging.getLogger(__name__)

NAME = "guardrails"
THREAD_CHARS = 8192  # requests with more text than this are scanned off the event loop


@dataclass(slots=True)
class _State:
    policy: Effective
    verdict: Verdict
    pseudonyms: Pseudonyms
    stream: StreamScan | None = None  # a streamed answer's hold-back and held tool calls


class Guardrails(Hook[HookContext]):
    """Content guardrails on every model endpoint (see the module docstring)."""

    name = NAME
    phase = "input"

    def __init__(
        self,
        book: PolicyBook,
        scanners: Scanners,
        *,
        hold_back_chars: int = 128,
        audit: Callable[[AuditEvent], None] | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.book = book
        self._scanners = scanners
        self._hold = hold_back_chars
        self._audit = audit
        self._observer = observer

    # input -------------------------------------------------------------------------------------

    async def before(self, ctx: HookContext, request: ModelRequest) -> ModelRequest:
        """Scan the request; block it, restrict it, or rewrite it as the policy says."""
        p = ctx.principal
        policy = self.book.resolve(
            key_id=p.key_id, agent_id=p.agent_id, team_id=p.team_id, org_id=p.org_id, model=request.model
        )
        state = _State(policy, Verdict(), Pseudonyms())
        ctx.notes[NAME] = state
        size = _size(request)
        if size > THREAD_CHARS:
            request = await asyncio.to_thread(self._input, state, request)
        else:
            request = self._input(state, request)
        strongest = state.verdict.strongest()
        if strongest == "block":
            blocked = Counter({e: n for (e, a), n in state.verdict.input.items() if a == "block"})
            raise Denied(
                f"the request contains {describe(blocked)}, which the guardrail policy blocks; remove them and "
                "retry (or ask an admin to change the policy)",
                code="guardrail_blocked",
                status=400,
            )
        if strongest == "restrict":
            ctx.restricted = True
            ctx.notes["residency_reason"] = "guardrails: " + describe(
                Counter({e: n for (e, a), n in state.verdict.input.items() if a == "restrict"})
            )
        if state.pseudonyms.by_placeholder:
            ctx.cacheable = False
        return request

    def _input(self, state: _State, request: ModelRequest) -> ModelRequest:
        scanner = self._scanners.content(state.policy)
        untrusted = self._scanners.untrusted()

        def clean(text: str, *, tool_result: bool = False) -> str:
            if not text:
                return text
            found = scanner.scan(text)
            if tool_result and untrusted is not None:
                screened = untrusted.scan(text)
                for f in screened:
                    state.verdict.untrusted[f.entity] += 1
                if screened:  # acted on like any other type: logged by "*", or as the policy names them
                    found = resolve_overlaps([*found, *screened])
            return self._apply(state, found, text)

        if isinstance(request, EmbeddingRequest):
            if isinstance(request.input, str):
                return request.model_copy(update={"input": clean(request.input)})
            if request.input and all(isinstance(x, str) for x in request.input):
                return request.model_copy(update={"input": [clean(str(x)) for x in request.input]})
            return request
        messages = [self._message(m, clean) for m in request.messages]
        if all(new is old for new, old in zip(messages, request.messages, strict=True)):
            return request
        return request.model_copy(update={"messages": messages})

    def _message(self, m: Message, clean: Callable[..., str]) -> Message:
        tool = m.role == "tool"
        update: dict[str, object] = {}
        if isinstance(m.content, str):
            new = clean(m.content, tool_result=tool)
            if new != m.content:
                update["content"] = new
        elif m.content:
            parts = [
                p.model_copy(update={"text": clean(p.text, tool_result=tool)}) if isinstance(p, TextPart) else p
                for p in m.content
            ]
            if any(
                isinstance(a, TextPart) and isinstance(b, TextPart) and a.text != b.text
                for a, b in zip(parts, m.content, strict=True)
            ):
                update["content"] = parts
        if m.tool_calls:
            calls = []
            for call in m.tool_calls:
                args = clean(call.function.arguments)
                if args != call.function.arguments:
                    call = call.model_copy(update={"function": call.function.model_copy(update={"arguments": args})})
                calls.append(call)
            if any(a is not b for a, b in zip(calls, m.tool_calls, strict=True)):
                update["tool_calls"] = calls
        return m.model_copy(update=update) if update else m

    def _apply(self, state: _State, findings: Sequence[Finding], text: str) -> str:
        """Record the input findings and rewrite `text` for the redacted and pseudonymised ones."""
        policy, verdict, pseudonyms = state.policy, state.verdict, state.pseudonyms

        def replace(f: Finding, value: str) -> str | None:
            action = policy.input_action(f.entity)
            if action is None:
                return None
            verdict.input[(f.entity, action)] += 1
            if action == "redact":
                return redacted(f.entity)
            if action == "pseudonymise":
                return pseudonyms.placeholder(f.entity, value)
            return None

        return rewrite(text, findings, replace)

    # output ------------------------------------------------------------------------------------

    def _output(self, state: _State, text: str, *, json_string: bool = False) -> str:
        """A complete piece of answer, scanned and restored; raises Denied when the policy blocks it."""
        stream = HoldBack(
            self._scanners.output(state.policy).scan,
            state.policy.output_action,
            state.pseudonyms if state.pseudonyms.by_placeholder else None,
            0,
            json_string=json_string,
        )
        out = stream.feed(text, final=True)
        self._count_output(state, stream)
        if stream.blocked is not None:
            raise self._blocked(stream.blocked)
        return out

    def _count_output(self, state: _State, stream: HoldBack) -> None:
        for f in stream.findings:
            action = state.policy.output_action(f.entity)
            if action is not None:
                state.verdict.output[(f.entity, action)] += 1
        stream.findings.clear()

    @staticmethod
    def _blocked(f: Finding) -> Denied:
        return Denied(
            f"the answer contained {f.entity}, which the guardrail policy blocks; it was not delivered",
            code="guardrail_blocked",
            status=400,
        )

    def _active(self, ctx: HookContext) -> _State | None:
        state = ctx.notes.get(NAME)
        if not isinstance(state, _State):
            return None
        if not state.policy.scans_output and not state.pseudonyms.by_placeholder:
            return None
        return state

    async def after(self, ctx: HookContext, response: ModelResponse) -> ModelResponse:
        """Scan a complete answer and restore its pseudonyms."""
        state = self._active(ctx)
        if state is None or not isinstance(response, ChatResponse):
            return response
        choices = []
        for choice in response.choices:
            msg = choice.message
            update: dict[str, object] = {}
            if msg.content:
                update["content"] = self._output(state, msg.content)
            if msg.tool_calls:
                update["tool_calls"] = [
                    c.model_copy(
                        update={
                            "function": c.function.model_copy(
                                update={"arguments": self._output(state, c.function.arguments, json_string=True)}
                            )
                        }
                    )
                    for c in msg.tool_calls
                ]
            choices.append(choice.model_copy(update={"message": msg.model_copy(update=update)}) if update else choice)
        return response.model_copy(update={"choices": choices})

    def watches_stream(self, ctx: HookContext) -> bool:
        """Only a stream whose output is scanned or whose pseudonyms are restored."""
        return self._active(ctx) is not None

    async def on_batch(self, ctx: HookContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        """Hold back, scan and restore a streamed answer; cut it at a blocked entity."""
        state = self._active(ctx)
        if state is None:
            return batch
        last = getattr(batch, "last", False)
        out = self._stream(state).batch(batch, last=last)
        return Batch.final(out) if last else out

    def _stream(self, state: _State) -> StreamScan:
        if state.stream is None:
            scanner = self._scanners.output(state.policy)
            text = HoldBack(
                scanner.scan,
                state.policy.output_action,
                state.pseudonyms if state.pseudonyms.by_placeholder else None,
                self._hold,
                could_match=scanner.could_match,
            )
            state.stream = StreamScan(
                text,
                lambda args: self._stream_output(state, args),
                lambda hold: self._count_output(state, hold),
                self._blocked,
            )
        return state.stream

    def _stream_output(self, state: _State, text: str) -> str:
        try:
            return self._output(state, text, json_string=True)
        except Denied as exc:
            raise CutStream(exc) from None

    # finish ------------------------------------------------------------------------------------

    def finish(self, ctx: HookContext, outcome: Outcome) -> None:
        """Audit and count the verdict (types, counts and actions only)."""
        state = ctx.notes.get(NAME)
        if not isinstance(state, _State):
            return
        v = state.verdict
        if not v.input and not v.output and not v.untrusted:
            return
        if self._observer is not None:
            for direction, counts in (("input", v.input), ("output", v.output)):
                for (entity, action), n in counts.items():
                    self._observer.verdict(NAME, direction, entity, action, n)
            for entity, n in v.untrusted.items():
                self._observer.verdict(NAME, "untrusted", entity, "flag", n)
        if self._audit is None:
            return
        p = ctx.principal
        blocked = any(a == "block" for (_, a) in (*v.input, *v.output))
        self._audit(
            AuditEvent(
                "guardrail.verdict",
                "deny" if blocked else "allow",
                p.key_id,
                p.name,
                ctx.alias,
                "",
                {
                    "request_id": ctx.request_id,
                    "input": flat(v.input),
                    "output": flat(v.output),
                    "untrusted": describe(v.untrusted),
                    "status": outcome.status,
                },
            )
        )


def _size(request: ModelRequest) -> int:
    if isinstance(request, EmbeddingRequest):
        return (
            sum(len(x) for x in request.input if isinstance(x, str))
            if not isinstance(request.input, str)
            else len(request.input)
        )
    return sum(len(m.text()) for m in request.messages)
