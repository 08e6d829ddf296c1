"""The MCP gateway's core: upstream catalogs checked against pins, and each agent's tool call governed.

`McpGateway` keeps, per upstream server, the tools it lists now (with their definition hashes and the
poisoning scan's flags) and the pins an admin approved (`mcp.pins`; re-read from the store every
`mcp.refresh_s`, at once after an approval through this process). Tools are exposed namespaced
`<server>__<tool>`; only approved ones are listed to an agent, and only those its `ToolPolicy` permits.

A call (`call`) is judged like a tool call a model returns (`agents.hook.judge`: scope, argument
constraints, provenance), audited as `agent.tool_call` (tool, verdict, SHA-256 of the arguments, `via:
mcp`; never values), sent upstream, and its text goes through the input guardrails (a blocked entity
replaces the result with an error; redact and pseudonymise both redact, as no answer will restore a
placeholder here). The (screened) text is then kept as untrusted content of that agent (`RecentResults`).

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

import asyncio
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from interlock.agents.approvals import Approvals
from interlock.agents.hook import judge, refusal_note, resolve
from interlock.agents.policy import ToolPolicy
from interlock.agents.provenance import Corpus
from interlock.audit.chain import AuditEvent
from interlock.auth.keys import Principal
from interlock.background import Periodic
from interlock.errors import BadRequest, NotFound
from interlock.guardrails.scanner import resolve_overlaps
from interlock.guardrails.service import GuardrailService
from interlock.guardrails.transform import redacted, rewrite
from interlock.mcp.pins import PinStatus, definition_hash, status
from interlock.mcp.results import RecentResults, result_text, without_arguments
from interlock.mcp.scan import Flag, scan_tool
from interlock.mcp.upstream import Upstream, UpstreamDown
from interlock.settings import McpSettings
from interlock.store.mcp_queries import McpPinRecord, McpStore

log = logging.getLogger(__name__)

SEP = "__"


class McpConflict(BadRequest):
    """409: the server cannot be approved as it is (flagged by the scan, or not connected)."""

    status = 409


@dataclass(frozen=True, slots=True)
class LiveTool:
    """One tool as its upstream lists it now."""

    server: str
    tool: types.Tool
    sha256: str
    flags: tuple[Flag, ...]

    @property
    def name(self) -> str:
        """The namespaced name agents see."""
        return f"{self.server}{SEP}{self.tool.name}"


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


class McpGateway:
    """Upstream connections, pins, and the governed call path (see the module docstring)."""

    def __init__(
        self,
        settings: McpSettings,
        store: McpStore,
        audit: Callable[[AuditEvent], None] | None = None,
        guardrails: GuardrailService | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._audit = audit
        self._guardrails = guardrails
        self.upstreams = {s.name: Upstream(s, self.relist) for s in settings.servers}
        self.live: dict[str, dict[str, LiveTool]] = {s.name: {} for s in settings.servers}
        self.pins: dict[tuple[str, str], McpPinRecord] = {}
        self.results = RecentResults(settings.untrusted_results, settings.untrusted_ttl_s)
        self._reported: set[tuple[str, str, str]] = set()  # (server, tool, live hash) already audited as changed
        self._refresher: Periodic | None = None
        self._relisted = time.monotonic()
        self.approvals: Approvals | None = None  # held calls (approval required, untrusted values) wait for a person

    # lifecycle ---------------------------------------------------------------------------------

    async def start(self, *, refresh: bool = True) -> None:
        """Connect every upstream, list its tools, read the pins (and keep re-reading them)."""
        await self.refresh_pins()
        await asyncio.gather(*(self._connect(name) for name in self.upstreams))
        if refresh:
            self._refresher = Periodic(
                self._tick,
                self.settings.refresh_s,
                name="interlock-mcp-pins",
                failure="MCP pin refresh failed; keeping the previous pins",
            )
            await self._refresher.begin()

    async def _connect(self, name: str) -> None:
        if await self.upstreams[name].connect():
            await self.relist(name)

    async def close(self) -> None:
        """Stop refreshing and close every upstream connection."""
        if self._refresher is not None:
            await self._refresher.close()
        await asyncio.gather(*(u.close() for u in self.upstreams.values()), return_exceptions=True)

    async def _tick(self) -> None:
        """Re-read the pins; every `relist_s`, re-list each server (reconnecting those that are down)."""
        await self.refresh_pins()
        now = time.monotonic()
        if now - self._relisted >= self.settings.relist_s:
            self._relisted = now
            await asyncio.gather(*(self.relist(name) for name in self.upstreams))

    async def refresh_pins(self) -> None:
        """Re-read the pins from the store."""
        self.pins = {(p.server, p.tool): p for p in await self._store.list_mcp_pins()}

    # catalog -----------------------------------------------------------------------------------

    def status_of(self, live: LiveTool) -> PinStatus:
        """Whether `live` is approved, changed since approval, or unapproved."""
        pin = self.pins.get((live.server, live.tool.name))
        return status(live.sha256, pin.sha256 if pin else None)

    async def relist(self, server: str) -> bool:
        """List a server's tools again and check them against the pins (on start, on `list_changed`, every
        `relist_s`); False when the server could not be listed (then none of its tools is served)."""
        upstream = self.upstreams[server]
        if not upstream.connected and not await upstream.connect():
            self.live[server] = {}
            return False
        try:
            tools = await upstream.list_tools()
        except Exception as exc:  # the upstream's fault: keep serving the others
            upstream.error = type(exc).__name__
            log.warning("MCP server %r: listing its tools failed (%s)", server, upstream.error)
            self.live[server] = {}
            return False
        live: dict[str, LiveTool] = {}
        for t in tools:
            schema = t.input_schema
            live[t.name] = LiveTool(
                server,
                t,
                definition_hash(t.name, t.description, schema),
                tuple(scan_tool(t.name, t.description, schema)),
            )
        self.live[server] = live
        for name, tool in live.items():
            state = self.status_of(tool)
            if state == "changed" and (server, name, tool.sha256) not in self._reported:
                self._reported.add((server, name, tool.sha256))
                pin = self.pins[(server, name)]
                log.warning(
                    "MCP tool %s%s%s changed since it was approved; disabled until re-approved", server, SEP, name
                )
                self._record(
                    AuditEvent(
                        "mcp.tool_changed",
                        "deny",
                        None,
                        "mcp",
                        tool.name,
                        "its definition changed after approval; disabled until an admin approves the server again",
                        {
                            "server": server,
                            "tool": name,
                            "approved_sha256": pin.sha256,
                            "live_sha256": tool.sha256,
                            "flags": "; ".join(str(f) for f in tool.flags)[:500],
                        },
                    )
                )
        return True

    def tools_for(self, policy: ToolPolicy | None) -> list[LiveTool]:
        """The approved tools an agent with `policy` may call, by name."""
        found = [
            t
            for tools in self.live.values()
            for t in tools.values()
            if self.status_of(t) == "approved" and (policy is None or policy.permits(t.name))
        ]
        return sorted(found, key=lambda t: t.name)

    def servers_report(self) -> list[dict[str, Any]]:
        """Each server: connected or not, its tools with status, hashes and flags (for admins; no credentials)."""
        out = []
        for name, upstream in self.upstreams.items():
            tools = []
            for t in sorted(self.live.get(name, {}).values(), key=lambda t: t.tool.name):
                pin = self.pins.get((name, t.tool.name))
                tools.append(
                    {
                        "name": t.name,
                        "tool": t.tool.name,
                        "description": t.tool.description or "",
                        "sha256": t.sha256,
                        "approved_sha256": pin.sha256 if pin else None,
                        "status": self.status_of(t),
                        "flags": [str(f) for f in t.flags],
                        "forced": bool(pin and pin.forced and pin.sha256 == t.sha256),
                    }
                )
            live_names = set(self.live.get(name, {}))
            missing = sorted(tool for (s, tool) in self.pins if s == name and tool not in live_names)
            out.append(
                {
                    "name": name,
                    "transport": "stdio" if upstream.cfg.command else "http",
                    "connected": upstream.connected,
                    "error": upstream.error,
                    "tools": tools,
                    "flagged": any(t["flags"] for t in tools),
                    "approved_but_missing": missing,
                }
            )
        return out

    async def approve(self, server: str, actor: str, *, force: bool = False) -> list[McpPinRecord]:
        """Pin every tool the server lists now. Refused (409) when the scan flags one, unless `force`."""
        if server not in self.upstreams:
            known = ", ".join(self.upstreams) or "none configured"
            raise NotFound(f"no MCP server named '{server}' (configured: {known})", code="unknown_mcp_server")
        if not await self.relist(server):  # never pin an empty listing of a server that failed to answer
            error = self.upstreams[server].error or "unknown error"
            message = f"MCP server '{server}' did not list its tools ({error}); fix it and retry"
            raise McpConflict(message, code="mcp_server_down")
        live = self.live[server]
        flagged = {n: t.flags for n, t in live.items() if t.flags}
        if flagged and not force:
            reasons = "; ".join(
                f"{server}{SEP}{n}: " + ", ".join(str(f) for f in flags) for n, flags in flagged.items()
            )
            raise McpConflict(
                f"the poisoning scan flags tools of '{server}' ({reasons}); read their descriptions, and approve "
                "with force only if you trust them",
                code="mcp_tools_flagged",
            )
        at = time.time()
        pins = [McpPinRecord(server, n, t.sha256, actor, at, bool(t.flags)) for n, t in sorted(live.items())]
        await self._store.replace_mcp_pins(server, pins, at)
        await self.refresh_pins()
        return pins

    # the call path -----------------------------------------------------------------------------

    def find(self, name: str) -> LiveTool | None:
        """The live tool behind a namespaced name."""
        server, sep, tool = name.partition(SEP)
        return self.live.get(server, {}).get(tool) if sep else None

    async def call(
        self,
        principal: Principal,
        policy: ToolPolicy | None,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        run_id: str = "",
    ) -> types.CallToolResult:
        """One agent's tool call, governed (see the module docstring). Refusals are error results saying why."""
        args = arguments or {}
        args_json = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        live = self.find(name)
        if live is None or self.status_of(live) != "approved":
            state = "unknown" if live is None else self.status_of(live)
            why = {
                "unknown": "no such tool",
                "changed": "its definition changed since an admin approved it; it is disabled until re-approved",
                "unapproved": "an admin has not approved it yet (`interlock mcp approve SERVER`)",
            }[state]
            self._audit_call(principal, name, "deny", f"tool_{state}", why, args_json)
            return _error(f"[interlock] tool '{name}' is not available: {why}.")
        agent_id = principal.agent_id or ""
        trusted = Corpus.of(self.results.trusted_texts(agent_id))
        untrusted = Corpus.of(self.results.texts(agent_id))
        verdict = judge(policy or ToolPolicy(), name, args_json, trusted, untrusted)
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
            return _error(f"{refusal_note([('mcp', verdict)])} ({verdict.code})")
        try:
            result = await self.upstreams[live.server].call_tool(live.tool.name, args)
        except (UpstreamDown, TimeoutError) as exc:
            return _error(f"[interlock] MCP server '{live.server}' did not answer ({type(exc).__name__}); retry later.")
        except Exception as exc:  # an MCP error from the upstream: its message is the upstream's, not ours
            return _error(f"[interlock] MCP server '{live.server}' failed the call: {str(exc)[:300]}")
        return self._screen(principal, name, result, args)

    def _screen(
        self, principal: Principal, name: str, result: types.CallToolResult, args: object
    ) -> types.CallToolResult:
        """The input guardrails on the result's text; then keep it as the agent's untrusted content."""
        g = self._guardrails
        blocks: list[types.ContentBlock] = []
        counts: Counter[tuple[str, str]] = Counter()
        untrusted_counts: Counter[str] = Counter()
        blocked = False
        for block in result.content:
            if isinstance(block, types.TextContent) and g is not None:
                text, is_blocked = self._clean(g, principal, block.text, counts, untrusted_counts)
                blocked = blocked or is_blocked
                block = block.model_copy(update={"text": text})
            blocks.append(block)
        structured = result.structured_content
        if structured is not None and g is not None:
            text = json.dumps(structured, ensure_ascii=False)
            cleaned, is_blocked = self._clean(g, principal, text, counts, untrusted_counts)
            blocked = blocked or is_blocked
            if cleaned != text:
                structured = None  # redacted: the agent gets the text blocks only
        if counts or untrusted_counts:
            self._record(
                AuditEvent(
                    "guardrail.verdict",
                    "deny" if blocked else "allow",
                    principal.key_id,
                    principal.name,
                    name[:200],
                    "",
                    {
                        "via": "mcp",
                        "input": ",".join(f"{e}:{a}:{n}" for (e, a), n in sorted(counts.items())),
                        "untrusted": ",".join(f"{e}:{n}" for e, n in sorted(untrusted_counts.items())),
                    },
                )
            )
        if blocked:
            kinds = sorted({e for (e, a) in counts if a == "block"})
            return _error(
                f"[interlock] the result of '{name}' contains {', '.join(kinds)}, which the guardrail policy blocks."
            )
        screened = result.model_copy(update={"content": blocks, "structured_content": structured})
        if principal.agent_id:
            self.results.add(principal.agent_id, without_arguments(result_text(screened), args))
        return screened

    @staticmethod
    def _clean(
        g: GuardrailService,
        principal: Principal,
        text: str,
        counts: Counter[tuple[str, str]],
        untrusted_counts: Counter[str],
    ) -> tuple[str, bool]:
        policy = g.book.resolve(
            key_id=principal.key_id,
            agent_id=principal.agent_id,
            team_id=principal.team_id,
            org_id=principal.org_id,
            model=None,
        )
        found = g.scanners.content(policy).scan(text)
        screen = g.scanners.untrusted()
        if screen is not None:
            flagged = screen.scan(text)
            untrusted_counts.update(f.entity for f in flagged)
            found = resolve_overlaps([*found, *flagged])
        blocked = False

        def replace(f: Any, value: str) -> str | None:
            nonlocal blocked
            action = policy.input_action(f.entity)
            if action is None:
                return None
            counts[(f.entity, action)] += 1
            if action == "block":
                blocked = True
            if action in ("redact", "pseudonymise"):
                return redacted(f.entity)
            return None

        return rewrite(text, found, replace), blocked

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

    def _record(self, event: AuditEvent) -> None:
        if self._audit is not None:
            self._audit(event)
