"""The MCP gateway's core: each agent's tool call governed, on top of the upstream catalog (`catalog`).

`McpGateway` is the `McpCatalog` (upstreams, their tools checked against the pins, change notifications)
plus the call path.

A call (`call`) is judged like a tool call a model returns (`agents.hook.judge`: scope, argument
constraints, provenance), audited as `agent.tool_call` (tool, verdict, SHA-256 of the arguments, `via:
mcp`; never values), sent upstream, and its text goes through the input guardrails (`screening`). The
(screened) text is then kept as untrusted content of that agent (`RecentResults`).

Runs: each call is a step of its run (`agents.run_hook.RunHook`, `runs` here): counted against the agent's
per-run caps before anything else, and refused when it would complete a loop of the run's recent MCP calls
(judged after the policy, before an approval is used up; a call that went through is added when it is sent
upstream). A stopped run raises the `Denied` (`run_step_cap`, `run_time_cap`, `run_spend_cap`,
`run_token_cap`, `run_loop`), which `mcp.server` answers as a JSON-RPC error. The run id is the
`x-interlock-run-id` header of the HTTP request; without it, `mcp_<session id>` for a stateful (handshake)
session, else `mcp` (one run per agent for its header-less calls, ended by `idle_s` of quiet).

Ledger: every call, refused or not, settles as exactly one ledger row (`mcp.ledger`: endpoint `mcp`, the
tool as the alias, the verdict as its status and error, no tokens, no cost), written when the call ends,
whatever it ended in.

Provenance: an MCP call carries no conversation of its own. Its trusted side is the system and user text of
the agent's recent model requests through Interlock; its untrusted side the agent's recent MCP results
(without the values of the very call that produced each, which a result merely echoing them did not
introduce). A sensitive tool whose argument value only an MCP result supplied is refused (or held, as the
policy says). A later model request of the same agent sees those results as untrusted too
(`provenance.McpProvenance`), so a tool call the model answers with, driven by such a value, is refused
there as well. Kept per agent (not per run), in this process only: the last `mcp.untrusted_results` of each
for `mcp.untrusted_ttl_s`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import mcp_types as types

from interlock.agents.approvals import Approvals
from interlock.agents.hook import judge, refusal_note, resolve
from interlock.agents.policy import ToolPolicy
from interlock.agents.provenance import Corpus
from interlock.agents.run_hook import RunHook
from interlock.audit.chain import AuditEvent
from interlock.auth.keys import Principal
from interlock.errors import GatewayError
from interlock.guardrails.service import GuardrailService
from interlock.mcp.catalog import SEP, LiveTool, McpConflict
from interlock.mcp.ledger import Settled, run_key
from interlock.mcp.reads import McpReads, shown
from interlock.mcp.results import result_text, without_arguments
from interlock.mcp.screening import screen_result
from interlock.mcp.upstream import UpstreamDown
from interlock.settings import McpSettings
from interlock.store.mcp_queries import McpStore

__all__ = ["SEP", "LiveTool", "McpConflict", "McpGateway"]


class McpGateway(McpReads):
    """The catalog, the read paths (`reads`) and the governed call path (see the module docstring)."""

    def __init__(
        self,
        settings: McpSettings,
        store: McpStore,
        audit: Callable[[AuditEvent], None] | None = None,
        guardrails: GuardrailService | None = None,
    ) -> None:
        super().__init__(settings, store, audit, guardrails)
        self.approvals: Approvals | None = None  # held calls (approval required, untrusted values) wait for a person
        self.runs: RunHook | None = None  # calls are steps of their run: caps and the loop breaker

    async def call(
        self,
        principal: Principal,
        policy: ToolPolicy | None,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        run_id: str = "",
        session_id: str = "",
    ) -> types.CallToolResult:
        """One agent's tool call, governed (see the module docstring). Refusals are error results saying why;
        a stopped run raises its `Denied` (an `Unavailable` when the run state cannot be read, failing closed).

        `run_id` is the caller's `x-interlock-run-id` (approvals are bound to it); `session_id` its MCP session.
        Whatever happens, the call leaves exactly one ledger row (`ledger`).
        """
        settled = Settled(run_id=run_key(run_id, session_id))
        return await self.settle(
            principal, name, settled, self._call(principal, policy, name, arguments or {}, run_id, settled)
        )

    async def _call(
        self,
        principal: Principal,
        policy: ToolPolicy | None,
        name: str,
        args: dict[str, Any],
        run_id: str,
        settled: Settled,
    ) -> types.CallToolResult:
        args_json = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        run = settled.run_id
        if self.runs is not None:
            await self.runs.mcp_step(principal, run, name)
        live = self.find(name)
        if live is None or self.status_of(live) != "approved":
            state = "unknown" if live is None else self.status_of(live)
            why = {
                "unknown": "no such tool",
                "changed": "its definition changed since an admin approved it; it is disabled until re-approved",
                "unapproved": "an admin has not approved it yet (`interlock mcp approve SERVER`)",
            }[state]
            self._audit_call(principal, name, "deny", f"tool_{state}", why, args_json)
            text = f"[interlock] tool '{shown(name)}' is not available: {why}."
            return settled.refuse(404 if live is None else 403, f"tool_{state}: {why}", text)
        settled.server, settled.upstream_tool = live.server, live.tool.name
        agent_id = principal.agent_id or ""
        trusted = Corpus.of(self.results.trusted_texts(agent_id))
        untrusted = Corpus.of(self.results.texts(agent_id))
        verdict = judge(policy or ToolPolicy(), name, args_json, trusted, untrusted)
        called: str | None = None
        if self.runs is not None and (verdict.allowed or verdict.held):
            try:
                called = await self.runs.mcp_loop(principal, run, name, args_json)
            except GatewayError as exc:
                self._audit_call(principal, name, "deny", exc.code or "run_loop", exc.message, args_json)
                raise
        verdict = await resolve(
            self.approvals,
            verdict,
            args_json,
            agent_id=agent_id,
            owner_id=principal.owner_id or "",
            run_id=run_id,
            actor=(principal.key_id, principal.name),
        )
        self._audit_call(
            principal, name, "allow" if verdict.allowed else "deny", verdict.code, verdict.reason, args_json
        )
        if not verdict.allowed:
            text = f"{refusal_note([('mcp', verdict)])} ({verdict.code})"
            return settled.refuse(403, f"{verdict.code}: {verdict.reason}", text)
        if self.runs is not None and called is not None:
            await self.runs.mcp_called(principal, run, called)
        settled.sent = True
        try:
            result = await self.upstreams[live.server].call_tool(live.tool.name, args)
        except (UpstreamDown, TimeoutError) as exc:
            return settled.refuse(
                504 if isinstance(exc, TimeoutError) else 502,
                f"mcp_upstream_unavailable: {type(exc).__name__}",
                f"[interlock] MCP server '{live.server}' did not answer ({type(exc).__name__}); retry later.",
            )
        except Exception as exc:  # an MCP error from the upstream: its message is the upstream's, not ours
            failure = str(exc)[:300]
            text = f"[interlock] MCP server '{live.server}' failed the call: {failure}"
            return settled.refuse(502, f"mcp_upstream_error: {failure}", text)
        screened, blocked = screen_result(self._guardrails, principal, name, result, self._record)
        if blocked:
            settled.error = "guardrail_blocked: the tool result was blocked by the input guardrails"
        elif principal.agent_id:  # kept as the agent's untrusted content
            self.results.add(principal.agent_id, without_arguments(result_text(screened), args))
        if result.is_error and settled.error is None:
            settled.error = "the upstream tool answered with an error result"
        return screened

    def _audit_call(self, p: Principal, tool: str, decision: str, code: str, reason: str, args_json: str) -> None:
        self._record(
            AuditEvent(
                "agent.tool_call",
                "allow" if decision == "allow" else "deny",
                p.key_id,
                p.name,
                tool[:200],
                reason,
                {
                    "via": "mcp",
                    "agent_id": p.agent_id or "",
                    "owner_id": p.owner_id or "",
                    "tool": tool[:200],
                    "verdict": code,
                    "args_sha256": hashlib.sha256(args_json.encode()).hexdigest(),
                },
            )
        )
