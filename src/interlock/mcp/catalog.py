"""The MCP gateway's catalog: the upstream servers, the tools each lists now, and the pins admins approved.

`McpCatalog` keeps, per upstream server, the tools it lists now (with their definition hashes and the
poisoning scan's flags) and the pins an admin approved (`mcp.pins`; re-read from the store every
`mcp.refresh_s`, at once after an approval through this process). Tools are exposed namespaced
`<server>__<tool>`; only approved ones are listed to an agent, and only those its `ToolPolicy` permits.
A listed tool whose definition no longer matches its pin is disabled until re-approved, and audited once
(`mcp.tool_changed`, the rug-pull defence).

Catalog changes: after every listing and pin refresh, the tools served (approved, as agents see them) are
compared with the last ones; when they differ (a rug pull disabled one, an approval added or restored one,
an upstream's `list_changed` or a server going down changed what is served), every `watch`er is told, and
`mcp.server` sends `notifications/tools/list_changed` to the agents' sessions. A change of one agent's
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
from interlock.mcp.pins import PinStatus, definition_hash, status
from interlock.mcp.scan import Flag, scan_tool
from interlock.mcp.upstream import Upstream
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
        self.pins: dict[tuple[str, str], McpPinRecord] = {}
        self._reported: set[tuple[str, str, str]] = set()  # (server, tool, live hash) already audited as changed
        self._refresher: Periodic | None = None
        self._relisted = time.monotonic()
        self._watchers: list[Callable[[], Awaitable[None]]] = []
        self._served: tuple[str, ...] | None = None  # the catalog agents were last served
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

    def watch(self, watcher: Callable[[], Awaitable[None]]) -> None:
        """Call `watcher` whenever the tools served to agents change (see the module docstring), in a task of
        its own: neither a listing nor an admin's approval waits for the agents' sessions."""
        self._watchers.append(watcher)

    async def _catalog_changed(self) -> None:
        served = tuple(
            sorted(
                t.name + "\n" + t.tool.model_dump_json()
                for tools in self.live.values()
                for t in tools.values()
                if self.status_of(t) == "approved"
            )
        )
        if served == self._served:
            return
        first, self._served = self._served is None, served
        if first:
            return
        for watcher in list(self._watchers):
            task = asyncio.get_running_loop().create_task(self._tell(watcher), name="interlock-mcp-tools-changed")
            self._telling.add(task)
            task.add_done_callback(self._telling.discard)

    @staticmethod
    async def _tell(watcher: Callable[[], Awaitable[None]]) -> None:
        try:
            await watcher()
        except Exception:  # a watcher's failure must not stop the others, nor the listing
            log.exception("telling a watcher that the MCP tools changed failed")

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
            await self._catalog_changed()
            return False
        try:
            tools = await upstream.list_tools()
        except Exception as exc:  # the upstream's fault: keep serving the others
            upstream.error = type(exc).__name__
            log.warning("MCP server %r: listing its tools failed (%s)", server, upstream.error)
            self.live[server] = {}
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

    def find(self, name: str) -> LiveTool | None:
        """The live tool behind a namespaced name."""
        server, sep, tool = name.partition(SEP)
        return self.live.get(server, {}).get(tool) if sep else None

    def _record(self, event: AuditEvent) -> None:
        if self._audit is not None:
            self._audit(event)
