"""The agent tool-call policy: every tool call a model returns to an agent is judged before the agent sees it.

For agent principals only (keys of kind "agent"). `before` reads the request once: which text is trusted
(system, developer and user messages) and which is not (tool results; see `provenance`). Each tool call in
the answer — complete (`after`) or streamed (`on_batch`, whose tool-call deltas are held until the call
is complete) — is judged against the agent's `ToolPolicy`: a tool the agent may not call, an argument
that breaks a constraint, or a sensitive tool driven by a value that only untrusted content supplied, is
refused. A refused call is removed from the answer, which stays a normal 200: its content says which call
was refused and why, and with no call left its finish reason is `stop`, so an unmodified agent loop carries
on safely. Chat, Responses and Anthropic messages all reach this hook as chat answers, so it covers them all.

A call that would complete a loop (`loops`: the third identical call, the second round of a cycle, judged
on the request's tool-call history and then the answer's calls in order, from the `loops.LoopWatch` the run
hook leaves in the notes) is removed the same way (code `run_loop`), before any approval is used up; only
the calls that stay in the answer extend the sequence.

A call the policy holds for a human's approval (`approval`, `approve`, `on_untrusted = "approve"`) is
settled by `agents.approvals`: approved once for exactly these arguments, it goes through (and the approval
is used up); otherwise it is removed like a refused call, and the note names the approval request and says
it awaits approval, so the agent can carry on and make the same call again once a person has approved it.

Each judged call is audited (`agent.tool_call`): the agent, its owner, the tool, the verdict and the reason
code, the approval request if any, and a SHA-256 of the arguments — never the values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from interlock.agents.approvals import Approvals
from interlock.agents.loops import LOOP_NOTE, LoopWatch, canonical_arguments, removal_reason
from interlock.agents.policy import ToolPolicy, arguments_sha256, violation
from interlock.agents.provenance import Corpus, leaves, untrusted_only
from interlock.audit.chain import AuditEvent
from interlock.plugins.hooks import Hook, HookContext, ModelRequest, ModelResponse, Outcome
from interlock.types import Batch, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, Delta, ToolCallDelta

log = logging.getLogger(__name__)
NAME = "agents"
TRUSTED_ROLES = frozenset({"system", "developer", "user"})


@dataclass(frozen=True, slots=True)
class ToolVerdict:
    """What was decided about one tool call (no argument values)."""

    tool: str
    allowed: bool
    code: str  # "allowed", "tool_not_allowed", "argument_constraint", "untrusted_provenance", "invalid_arguments",
    # "approval_required"; after `resolve`: "approved", "approval_pending", "approval_denied"; "run_loop"
    reason: str
    args_sha256: str
    held: bool = False  # not allowed yet: a human's approval may let it through (`resolve`)
    approval_id: str = ""


@dataclass(slots=True)
class _State:
    agent_id: str
    owner_id: str
    policy: ToolPolicy
    trusted: Corpus
    untrusted: Corpus
    verdicts: list[ToolVerdict] = field(default_factory=list)
    calls: dict[int, ToolCallDelta] = field(default_factory=dict)  # streamed calls, held until complete
    args: dict[int, list[str]] = field(default_factory=dict)


def _restore(text: str, placeholders: dict[str, str]) -> str:
    for placeholder, value in placeholders.items():
        text = text.replace(placeholder, value)
    return text


def corpora(request: ChatRequest, placeholders: dict[str, str] | None = None) -> tuple[Corpus, Corpus]:
    """The trusted and the untrusted text of a request (pseudonyms put back, as the answer will have them)."""
    trusted: list[str] = []
    untrusted: list[str] = []
    for m in request.messages:
        side = trusted if m.role in TRUSTED_ROLES else untrusted if m.role == "tool" else None
        if side is not None:
            side.append(m.text())
    if placeholders:
        trusted, untrusted = (
            [_restore(t, placeholders) for t in trusted],
            [_restore(t, placeholders) for t in untrusted],
        )
    return Corpus.of(trusted), Corpus.of(untrusted)


def judge(policy: ToolPolicy, tool: str, arguments: str, trusted: Corpus, untrusted: Corpus) -> ToolVerdict:
    """The verdict on one call (deny wins: scope, then constraints, then provenance, then approval).

    A call held for approval comes back not allowed with `held` set; `resolve` settles it against the approvals.
    """
    digest = arguments_sha256(arguments)  # the hash approvals are bound to, and what the audit records

    def deny(code: str, reason: str) -> ToolVerdict:
        return ToolVerdict(tool, False, code, reason, digest)

    if not policy.permits(tool):
        return deny("tool_not_allowed", "this agent may not call this tool")
    rules = policy.rules(tool)
    approval = ToolVerdict(tool, False, "approval_required", "this tool needs a person's approval", digest, held=True)
    if not rules:
        return approval if policy.needs_approval(tool) else ToolVerdict(tool, True, "allowed", "", digest)
    try:
        args: object = json.loads(arguments or "{}")
    except ValueError:
        return deny("invalid_arguments", "its arguments are not valid JSON")
    for rule in rules:
        for constraint in rule.constraints:
            why = violation(constraint, args)
            if why is not None:
                return deny("argument_constraint", why)
    why = "an argument value comes only from untrusted content (a tool result), not from the user or system"
    tainted = [r for r in rules if r.sensitive and untrusted_only(leaves(args, r.provenance_args), trusted, untrusted)]
    if any(r.on_untrusted == "refuse" for r in tainted):
        return deny("untrusted_provenance", why)
    if tainted:
        return ToolVerdict(tool, False, "untrusted_provenance", why, digest, held=True)
    return approval if policy.needs_approval(tool) else ToolVerdict(tool, True, "allowed", "", digest)


async def resolve(
    approvals: Approvals | None,
    verdict: ToolVerdict,
    arguments: str,
    *,
    agent_id: str,
    owner_id: str,
    run_id: str = "",
    request_id: str = "",
    actor: tuple[str | None, str] = (None, ""),
) -> ToolVerdict:
    """Settle a held verdict: approved (used up now) passes; pending or denied stays out. Others as they are.

    Fails closed: without approvals, or when the store cannot be read, a held call is refused.
    """
    if not verdict.held:
        return verdict
    if approvals is None:
        return replace(verdict, held=False, reason=verdict.reason + "; approvals are not available here")
    try:
        held = await approvals.check(
            agent_id=agent_id, owner_id=owner_id, run_id=run_id, tool=verdict.tool, arguments=arguments,
            reason=verdict.code, request_id=request_id, actor=actor,
        )  # fmt: skip
    except Exception:  # the store is down: the call stays out, the request goes on
        log.exception("approval lookup failed; the held call is refused")
        return replace(verdict, held=False, reason=verdict.reason + "; approvals are unavailable right now")
    if held.state == "approved":
        return replace(verdict, allowed=True, held=False, code="approved", approval_id=held.approval_id,
                       reason=f"approved by {held.decided_by}")  # fmt: skip
    if held.state == "denied":
        return replace(verdict, held=False, code="approval_denied", approval_id=held.approval_id,
                       reason=f"approval {held.approval_id} was denied")  # fmt: skip
    return replace(verdict, code="approval_pending", approval_id=held.approval_id)


def refusal_note(refused: list[tuple[str, ToolVerdict]]) -> str:
    """The text that tells the agent (and its user) which calls were refused, and why."""
    lines = [
        f"[interlock] tool call '{v.tool}' ({call_id}) is held: it awaits approval {v.approval_id} ({v.reason}). "
        "Once a person approves it, make the same call again with the same arguments; it will go through once."
        if v.code == "approval_pending"
        else f"[interlock] tool call '{v.tool}' ({call_id}) was refused: {v.reason}."
        for call_id, v in refused
    ]
    return "\n".join(lines)


class ToolPolicyHook(Hook[HookContext]):
    """Judges agents' tool calls (see the module docstring)."""

    name = NAME
    phase = "policy"

    def __init__(
        self,
        policy_of: Callable[[str], ToolPolicy | None],
        audit: Callable[[AuditEvent], None] | None = None,
        approvals: Approvals | None = None,
    ) -> None:
        self._policy_of = policy_of
        self._audit = audit
        self._approvals = approvals

    async def before(self, ctx: HookContext, request: ModelRequest) -> ModelRequest:
        """Note the agent's policy and the request's trusted and untrusted text."""
        p = ctx.principal
        if p.agent_id is None or not isinstance(request, ChatRequest):
            return request
        policy = self._policy_of(p.agent_id)
        if policy is None:
            return request
        guard = ctx.notes.get("guardrails")
        pseudonyms = getattr(getattr(guard, "pseudonyms", None), "by_placeholder", None)
        trusted, untrusted = corpora(request, pseudonyms if isinstance(pseudonyms, dict) else None)
        ctx.notes[NAME] = _State(p.agent_id, p.owner_id or "", policy, trusted, untrusted)
        return request

    async def _judge(self, ctx: HookContext, state: _State, tool: str, arguments: str) -> ToolVerdict:
        verdict = judge(state.policy, tool, arguments, state.trusted, state.untrusted)
        loops = ctx.notes.get(LOOP_NOTE)
        call = (tool, canonical_arguments(arguments))
        if isinstance(loops, LoopWatch) and (verdict.allowed or verdict.held):
            loop = loops.would_loop(call)
            if loop is not None:
                verdict = ToolVerdict(tool, False, "run_loop", removal_reason(loop), verdict.args_sha256)
        if verdict.held:
            p = ctx.principal
            verdict = await resolve(
                self._approvals, verdict, arguments, agent_id=state.agent_id, owner_id=state.owner_id,
                run_id=str(getattr(ctx, "run_id", "") or ""), request_id=ctx.request_id, actor=(p.key_id, p.name),
            )  # fmt: skip
        if verdict.allowed and isinstance(loops, LoopWatch):
            loops.add(call)
        state.verdicts.append(verdict)
        return verdict

    async def after(self, ctx: HookContext, response: ModelResponse) -> ModelResponse:
        """Remove refused calls from a complete answer and say why in its content."""
        state = ctx.notes.get(NAME)
        if not isinstance(state, _State) or not isinstance(response, ChatResponse):
            return response
        choices = []
        for choice in response.choices:
            msg = choice.message
            if not msg.tool_calls:
                choices.append(choice)
                continue
            kept, refused = [], []
            for call in msg.tool_calls:
                verdict = await self._judge(ctx, state, call.function.name, call.function.arguments)
                (kept.append(call) if verdict.allowed else refused.append((call.id, verdict)))
            if not refused:
                choices.append(choice)
                continue
            content = "\n".join(t for t in (msg.content, refusal_note(refused)) if t)
            message = msg.model_copy(update={"content": content, "tool_calls": kept or None})
            update: dict[str, object] = {"message": message}
            if not kept:
                update["finish_reason"] = "stop"
            choices.append(choice.model_copy(update=update))
        return response.model_copy(update={"choices": choices})

    def watches_stream(self, ctx: HookContext) -> bool:
        """Only an agent's stream: its tool calls are held and judged (the gateway may relay the others)."""
        return isinstance(ctx.notes.get(NAME), _State)

    async def on_batch(self, ctx: HookContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        """Hold streamed tool-call deltas until each call is complete, then release what the policy allows."""
        state = ctx.notes.get(NAME)
        if not isinstance(state, _State):
            return batch
        out: list[ChatChunk] = []
        for chunk in batch:
            out.extend(await self._chunk(ctx, state, chunk))
        last = getattr(batch, "last", False)
        if last and state.calls and batch:  # the stream ended without a finish reason
            at = len(out)
            while at > 0 and not out[at - 1].choices:  # before a trailing usage chunk
                at -= 1
            out[at:at] = (await self._release(ctx, state, batch[-1]))[0]
        return Batch.final(out) if last else out

    async def _chunk(self, ctx: HookContext, state: _State, chunk: ChatChunk) -> list[ChatChunk]:
        if not chunk.choices:
            return [chunk]
        choice = chunk.choices[0]
        delta = choice.delta
        if not delta.tool_calls and choice.finish_reason is None:
            return [chunk]
        for call in delta.tool_calls or ():
            held = state.calls.get(call.index)
            if held is None:
                state.calls[call.index] = call
            else:  # a later delta may name the call or the tool
                fn = {**(held.function or {}), **{k: v for k, v in (call.function or {}).items() if k == "name" and v}}
                state.calls[call.index] = held.model_copy(update={"id": held.id or call.id, "function": fn})
            state.args.setdefault(call.index, []).append((call.function or {}).get("arguments", ""))
        out: list[ChatChunk] = []
        rest = delta.model_copy(update={"tool_calls": None})
        if rest.content or rest.role is not None:
            out.append(_only(chunk, rest))
        if choice.finish_reason is None:
            return out
        had_calls = bool(state.calls)
        released, any_kept = await self._release(ctx, state, chunk)
        out.extend(released)
        finish = "stop" if had_calls and not any_kept and choice.finish_reason == "tool_calls" else choice.finish_reason
        end = choice.model_copy(update={"delta": Delta(), "finish_reason": finish})
        out.append(chunk.model_copy(update={"choices": [end]}))
        return out

    async def _release(self, ctx: HookContext, state: _State, like: ChatChunk) -> tuple[list[ChatChunk], bool]:
        """The held calls, judged: the allowed ones whole (renumbered from 0), then a note on the refused."""
        out: list[ChatChunk] = []
        refused: list[tuple[str, ToolVerdict]] = []
        for index in sorted(state.calls):
            call = state.calls[index]
            arguments = "".join(state.args.get(index, []))
            name = (call.function or {}).get("name", "")
            verdict = await self._judge(ctx, state, name, arguments)
            if not verdict.allowed:
                refused.append((call.id or f"#{index}", verdict))
                continue
            fn = {**(call.function or {}), "arguments": arguments}
            whole = call.model_copy(update={"index": len(out), "function": fn})
            out.append(_only(like, Delta(tool_calls=[whole])))
        kept = bool(out)
        if refused:
            out.append(_only(like, Delta(content=("\n" if kept else "") + refusal_note(refused))))
        state.calls.clear()
        state.args.clear()
        return out, kept

    def finish(self, ctx: HookContext, outcome: Outcome) -> None:
        """Audit each judged call: tool, verdict, reason code and a hash of the arguments."""
        state = ctx.notes.get(NAME)
        if not isinstance(state, _State) or self._audit is None:
            return
        p = ctx.principal
        for v in state.verdicts:
            self._audit(
                AuditEvent(
                    "agent.tool_call",
                    "allow" if v.allowed else "deny",
                    p.key_id,
                    p.name,
                    v.tool[:200],
                    v.reason,
                    {
                        "request_id": ctx.request_id,
                        "agent_id": state.agent_id,
                        "owner_id": state.owner_id,
                        "tool": v.tool[:200],
                        "verdict": v.code,
                        "args_sha256": v.args_sha256,
                        **({"approval_id": v.approval_id} if v.approval_id else {}),
                    },
                )
            )


def _only(chunk: ChatChunk, delta: Delta) -> ChatChunk:
    """A copy of `chunk` with one choice carrying `delta`, no finish reason and no usage."""
    choice = ChunkChoice(index=chunk.choices[0].index if chunk.choices else 0, delta=delta)
    return chunk.model_copy(update={"choices": [choice], "usage": None})
