"""The MCP gateway's catalog: the upstream servers, the tools each lists now, and the pins admins approved.

`McpCatalog` keeps, per upstream server, the tools it lists now (with their definition hashes and the
poisoning scan's flags) and the pins an admin approved (`mcp.pins`; re-read from the store every
`mcp.refresh_s`, at once after an approval through this process). Tools are exposed namespaced
`<server>__<tool>`; only approved ones are listed to an agent, and only those its `ToolPolicy` permits.
A listed tool whose definition no longer matches its pin is disabled until re-approved, and audited once
(`mcp.tool_changed`, the rug-pull defence).

Prompts, resources and resource templates (`listings`) are listed, pinned, scanned and checked the same
way, each under a pin key of its own kind (`prompt:<name>`, `resource:<uri>`, `template:<uri template>`).

Catalog changes: after every listing and pin refresh, the tools served (approved, as agents see them) are
compared with the last ones; when they differ (a rug pull disabled one, an approval added or restored one,
an upstream's `list_changed` or a server going down changed what is served), every `watch`er is told, and
`mcp.server` sends `notifications/tools/list_changed` (or `prompts/…`, `resources/…`: watchers are told
which kinds changed) to the agents' sessions. A change of one agent's
tool policy is not such a change: that agent sees it at its next `tools/list`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from interlock.agents.policy import ToolPolicy
from interlock.audit.chain import AuditEvent
from interlock.background import Periodic
from interlock.errors import BadRequest, NotFound
from interlock.mcp.listings import SEP, LivePrompt, LiveResource, resource_policy_name, split_uri
from interlock.mcp.pins import PinStatus, definition_hash, status
from interlock.mcp.scan import Flag, scan_tool
from interlock.mcp.upstream import Upstream
from interlock.settings import McpSettings
from interlock.store.mcp_queries import McpPinRecord, McpStore

log = logging.getLogger(__name__)

__all__ = ["SEP", "LivePrompt", "LiveResource", "LiveTool", "McpCatalog", "McpConflict"]


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

    @property
    def pin_key(self) -> str:
        """Its key in the pin store: the upstream's own name."""
        return self.tool.name


Live = LiveTool | LivePrompt | LiveResource


class McpCatalog:
    """Upstream connections, their live tools and the pins (see the module docstring)."""

    def __init__(
        self, settings: McpSettings, store: McpStore, audit: Callable[[AuditEvent], None] | None = None
    ) -> None:
        self.settings = settings
        self._store = store
        self._audit = audit
        self.upstreams = {s.name: Upstream(s, self.relist) for s in settings.servers}
        self.live: dict[str, dict[str, LiveTool]] = {s.name: {} for s in settings.servers}
        self.prompts: dict[str, dict[str, LivePrompt]] = {s.name: {} for s in settings.servers}  # by pin key
        self.resources: dict[str, dict[str, LiveResource]] = {s.name: {} for s in settings.servers}  # by pin key
        self.pins: dict[tuple[str, str], McpPinRecord] = {}
        self._reported: set[tuple[str, str, str]] = set()  # (server, tool, live hash) already audited as changed
        self._refresher: Periodic | None = None
        self._relisted = time.monotonic()
        self._watchers: list[Callable[[frozenset[str]], Awaitable[None]]] = []
        self._served: dict[str, tuple[str, ...]] | None = None  # the catalog agents were last served, per kind
        self._telling: set[asyncio.Task[None]] = set()  # watchers being told, off the listing's path

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
        for task in list(self._telling):
            task.cancel()
        await asyncio.gather(*self._telling, *(u.close() for u in self.upstreams.values()), return_exceptions=True)

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
        await self._catalog_changed()

    def watch(self, watcher: Callable[[frozenset[str]], Awaitable[None]]) -> None:
        """Call `watcher` with the kinds ("tools", "prompts", "resources") whose served entries changed (see the
        module docstring), in a task of its own: neither a listing nor an admin's approval waits for the
        agents' sessions."""
        self._watchers.append(watcher)

    def _served_now(self) -> dict[str, tuple[str, ...]]:
        def of(groups: Any) -> tuple[str, ...]:
            return tuple(
                sorted(
                    e.pin_key + "\n" + e.sha256
                    for entries in groups.values()
                    for e in entries.values()
                    if self.status_of(e) == "approved"
                )
            )

        tools = tuple(
            sorted(
                t.name + "\n" + t.tool.model_dump_json()
                for tools in self.live.values()
                for t in tools.values()
                if self.status_of(t) == "approved"
            )
        )
        return {"tools": tools, "prompts": of(self.prompts), "resources": of(self.resources)}

    async def _catalog_changed(self) -> None:
        served = self._served_now()
        before, self._served = self._served, served
        if before is None:
            return
        kinds = frozenset(k for k, v in served.items() if before.get(k) != v)
        if not kinds:
            return
        for watcher in list(self._watchers):
            task = asyncio.get_running_loop().create_task(self._tell(watcher, kinds), name="interlock-mcp-changed")
            self._telling.add(task)
            task.add_done_callback(self._telling.discard)

    @staticmethod
    async def _tell(watcher: Callable[[frozenset[str]], Awaitable[None]], kinds: frozenset[str]) -> None:
        try:
            await watcher(kinds)
        except Exception:  # a watcher's failure must not stop the others, nor the listing
            log.exception("telling a watcher that the MCP catalog changed failed")

    # catalog -----------------------------------------------------------------------------------

    def status_of(self, live: Live) -> PinStatus:
        """Whether `live` (a tool, prompt, resource or template) is approved, changed since approval, or unapproved."""
        pin = self.pins.get((live.server, live.pin_key))
        return status(live.sha256, pin.sha256 if pin else None)

    def entries(self, server: str) -> dict[str, Live]:
        """Everything `server` lists now, by pin key."""
        return {**self.live.get(server, {}), **self.prompts.get(server, {}), **self.resources.get(server, {})}

    async def relist(self, server: str) -> bool:
        """List a server's tools again and check them against the pins (on start, on `list_changed`, every
        `relist_s`); False when the server could not be listed (then none of its tools is served)."""
        upstream = self.upstreams[server]
        if not upstream.connected and not await upstream.connect():
            self.live[server], self.prompts[server], self.resources[server] = {}, {}, {}
            await self._catalog_changed()
            return False
        try:
            tools = await upstream.list_tools()
            prompts = await upstream.list_prompts()
            resources = await upstream.list_resources()
        except Exception as exc:  # the upstream's fault: keep serving the others
            upstream.error = type(exc).__name__
            log.warning("MCP server %r: listing its tools, prompts or resources failed (%s)", server, upstream.error)
            self.live[server], self.prompts[server], self.resources[server] = {}, {}, {}
            await self._catalog_changed()
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
        self.prompts[server] = {e.pin_key: e for e in (LivePrompt.of(server, p) for p in prompts)}
        self.resources[server] = {e.pin_key: e for e in (LiveResource.of(server, r) for r in resources)}
        for key, entry in self.entries(server).items():
            state = self.status_of(entry)
            if state == "changed" and (server, key, entry.sha256) not in self._reported:
                self._reported.add((server, key, entry.sha256))
                pin = self.pins[(server, key)]
                shown = entry.uri if isinstance(entry, LiveResource) else entry.name
                log.warning("MCP %s changed since it was approved; disabled until re-approved", shown)
                self._record(
                    AuditEvent(
                        "mcp.tool_changed",
                        "deny",
                        None,
                        "mcp",
                        shown[:200],
                        "its definition changed after approval; disabled until an admin approves the server again",
                        {
                            "server": server,
                            "tool": key[:200],  # the pin key: a tool's name, or prompt:/resource:/template:…
                            "approved_sha256": pin.sha256,
                            "live_sha256": entry.sha256,
                            "flags": "; ".join(str(f) for f in entry.flags)[:500],
                        },
                    )
                )
        await self._catalog_changed()
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

    def prompts_for(self, policy: ToolPolicy | None) -> list[LivePrompt]:
        """The approved prompts an agent with `policy` may get, by name."""
        found = [
            p
            for prompts in self.prompts.values()
            for p in prompts.values()
            if self.status_of(p) == "approved" and (policy is None or policy.permits(p.policy_name))
        ]
        return sorted(found, key=lambda p: p.name)

    def resources_for(self, policy: ToolPolicy | None, kind: str) -> list[LiveResource]:
        """The approved resources (`kind` "resource") or templates ("template") an agent with `policy` may read.

        A template is listed when the policy could permit some URI it expands to: its own text as the URI."""
        found = [
            r
            for entries in self.resources.values()
            for r in entries.values()
            if r.kind == kind
            and self.status_of(r) == "approved"
            and (policy is None or policy.permits(resource_policy_name(r.server, r.upstream_uri)))
        ]
        return sorted(found, key=lambda r: r.uri)

    def find_prompt(self, name: str) -> LivePrompt | None:
        """The live prompt behind a namespaced name."""
        server, sep, prompt = name.partition(SEP)
        return self.prompts.get(server, {}).get(f"prompt:{prompt}") if sep else None

    def find_resource(self, uri: str) -> tuple[str, str, LiveResource | None] | None:
        """(server, upstream URI, the listed resource or template covering it, if any) for a URI agents see;
        None when the URI is not one of the gateway's (`interlock://<server>/<uri>`) or names no server.

        A listed resource wins over a template; among templates, the first approved one that covers it."""
        parts = split_uri(uri)
        if parts is None or parts[0] not in self.upstreams:
            return None
        server, upstream_uri = parts
        entries = self.resources.get(server, {})
        exact = entries.get(f"resource:{upstream_uri}")
        if exact is not None:
            return server, upstream_uri, exact
        covering = [e for e in entries.values() if e.kind == "template" and e.covers(upstream_uri)]
        covering.sort(key=lambda e: (self.status_of(e) != "approved", e.upstream_uri))
        return server, upstream_uri, covering[0] if covering else None

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
            live_names = set(self.entries(name))
            missing = sorted(tool for (s, tool) in self.pins if s == name and tool not in live_names)
            listed: list[dict[str, Any]] = []
            for key, e in sorted(self.entries(name).items()):
                if isinstance(e, LiveTool):
                    continue
                pin = self.pins.get((name, key))
                listed.append(
                    {
                        "kind": "prompt" if isinstance(e, LivePrompt) else e.kind,
                        "name": e.name if isinstance(e, LivePrompt) else e.uri,
                        "description": (e.prompt.description if isinstance(e, LivePrompt) else e.entry.description)
                        or "",
                        "sha256": e.sha256,
                        "approved_sha256": pin.sha256 if pin else None,
                        "status": self.status_of(e),
                        "flags": [str(f) for f in e.flags],
                    }
                )
            out.append(
                {
                    "name": name,
                    "transport": "stdio" if upstream.cfg.command else "http",
                    "connected": upstream.connected,
                    "error": upstream.error,
                    "tools": tools,
                    "prompts_and_resources": listed,
                    "flagged": any(t["flags"] for t in tools) or any(e["flags"] for e in listed),
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
        live = self.entries(server)
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

    def find(self, name: str) -> LiveTool | None:
        """The live tool behind a namespaced name."""
        server, sep, tool = name.partition(SEP)
        return self.live.get(server, {}).get(tool) if sep else None

    def _record(self, event: AuditEvent) -> None:
        if self._audit is not None:
            self._audit(event)
