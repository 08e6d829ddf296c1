"""The agent tool-call policy: every tool call a model returns to an agent is judged before the agent sees it.

For agent principals only (keys of kind "agent"). `before` reads the request once: which text is trusted
(system, developer and user messages) and which is not (tool results; see `provenance`). Each tool call in
the answer — complete (`after`) or streamed (`on_batch`, whose tool-call deltas are held until the call
is complete) — is judged against the agent's `ToolPolicy`: a tool the agent may not call, an argument
that breaks a constraint, or a sensitive tool driven by a value that only untrusted content supplied, is
refused. A refused call is removed from the answer, which stays a normal 200: its content says which call
was refused and why, and with no call left its finish reason is `stop`, so an unmodified agent loop carries
on safely. Chat, Responses and Anthropic messages all reach this hook as chat answers, so it covers them all.

Each judged call is audited (`agent.tool_call`): the agent, its owner, the tool, the verdict and the reason
code, and a SHA-256 of the arguments — never the values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from interlock.agents.policy import ToolPolicy, violation
from interlock.agents.provenance import Corpus, leaves, untrusted_only
from interlock.audit.chain import AuditEvent
from interlock.plugins.hooks import Hook, HookContext, ModelRequest, ModelResponse, Outcome
from interlock.types import Batch, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, Delta, ToolCallDelta

NAME = "agents"
TRUSTED_ROLES = frozenset({"system", "developer", "user"})


@dataclass(frozen=True, slots=True)
class ToolVerdict:
    """What was decided about one tool call (no argument values)."""

    tool: str
    allowed: bool
    code: str  # "allowed", "tool_not_allowed", "argument_constraint", "untrusted_provenance", "invalid_arguments"
    reason: str
    args_sha256: str


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
    """The verdict on one call (deny wins: scope, then constraints, then provenance)."""
    digest = hashlib.sha256(arguments.encode()).hexdigest()

    def deny(code: str, reason: str) -> ToolVerdict:
        return ToolVerdict(tool, False, code, reason, digest)

    if not policy.permits(tool):
        return deny("tool_not_allowed", "this agent may not call this tool")
    rules = policy.rules(tool)
    if not rules:
        return ToolVerdict(tool, True, "allowed", "", digest)
    try:
        args: object = json.loads(arguments or "{}")
    except ValueError:
        return deny("invalid_arguments", "its arguments are not valid JSON")
    for rule in rules:
        for constraint in rule.constraints:
            why = violation(constraint, args)
            if why is not None:
                return deny("argument_constraint", why)
    for rule in rules:
        if rule.sensitive and untrusted_only(leaves(args, rule.provenance_args), trusted, untrusted):
            return deny(
                "untrusted_provenance",
                "an argument value comes only from untrusted content (a tool result), not from the user or system",
            )
    return ToolVerdict(tool, True, "allowed", "", digest)


def refusal_note(refused: list[tuple[str, ToolVerdict]]) -> str:
    """The text that tells the agent (and its user) which calls were refused, and why."""
    lines = [f"[interlock] tool call '{v.tool}' ({call_id}) was refused: {v.reason}." for call_id, v in refused]
    return "\n".join(lines)


class ToolPolicyHook(Hook[HookContext]):
    """Judges agents' tool calls (see the module docstring)."""

    name = NAME
    phase = "policy"

    def __init__(
        self, policy_of: Callable[[str], ToolPolicy | None], audit: Callable[[AuditEvent], None] | None = None
    ) -> None:
        self._policy_of = policy_of
        self._audit = audit

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

    def _judge(self, state: _State, tool: str, arguments: str) -> ToolVerdict:
        verdict = judge(state.policy, tool, arguments, state.trusted, state.untrusted)
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
                verdict = self._judge(state, call.function.name, call.function.arguments)
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

    async def on_batch(self, ctx: HookContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        """Hold streamed tool-call deltas until each call is complete, then release what the policy allows."""
        state = ctx.notes.get(NAME)
        if not isinstance(state, _State):
            return batch
        out: list[ChatChunk] = []
        for chunk in batch:
            out.extend(self._chunk(state, chunk))
        last = getattr(batch, "last", False)
        if last and state.calls and batch:  # the stream ended without a finish reason
            at = len(out)
            while at > 0 and not out[at - 1].choices:  # before a trailing usage chunk
                at -= 1
            out[at:at] = self._release(state, batch[-1])[0]
        return Batch.final(out) if last else out

    def _chunk(self, state: _State, chunk: ChatChunk) -> list[ChatChunk]:
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
        released, any_kept = self._release(state, chunk)
        out.extend(released)
        finish = "stop" if had_calls and not any_kept and choice.finish_reason == "tool_calls" else choice.finish_reason
        end = choice.model_copy(update={"delta": Delta(), "finish_reason": finish})
        out.append(chunk.model_copy(update={"choices": [end]}))
        return out

    def _release(self, state: _State, like: ChatChunk) -> tuple[list[ChatChunk], bool]:
        """The held calls, judged: the allowed ones whole (renumbered from 0), then a note on the refused."""
        out: list[ChatChunk] = []
        refused: list[tuple[str, ToolVerdict]] = []
        for index in sorted(state.calls):
            call = state.calls[index]
            arguments = "".join(state.args.get(index, []))
            name = (call.function or {}).get("name", "")
            verdict = self._judge(state, name, arguments)
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
                    },
                )
            )


def _only(chunk: ChatChunk, delta: Delta) -> ChatChunk:
    """A copy of `chunk` with one choice carrying `delta`, no finish reason and no usage."""
    choice = ChunkChoice(index=chunk.choices[0].index if chunk.choices else 0, delta=delta)
    return chunk.model_copy(update={"choices": [choice], "usage": None})
