"""The MCP gateway's tool pins, for every store (SQL written once, `?` placeholders).

A pin is the SHA-256 of one upstream tool's name, description and input schema as an admin approved it
(`mcp.pins`). Approving a server upserts a pin per tool it lists now, then deletes that server's older pins,
so a reader never sees the server without pins in between, and a tool the server stopped listing is
forgotten (should it come back, it is unapproved).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

_PIN = "server, tool, sha256, approved_by, approved_at, forced"


@dataclass(frozen=True, slots=True)
class McpPinRecord:
    """One approved tool definition."""

    server: str
    tool: str  # the upstream's own name (not namespaced)
    sha256: str
    approved_by: str
    approved_at: float
    forced: bool = False  # approved although the poisoning scan flagged it (`--force`, audited)


class McpStore(Protocol):
    """What the MCP gateway needs from a store."""

    async def list_mcp_pins(self) -> list[McpPinRecord]: ...
    async def replace_mcp_pins(self, server: str, pins: list[McpPinRecord], at: float) -> None: ...


class McpQueries:
    """Mixed into a store, which provides `_query` and `_execute` taking `?` placeholders."""

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        raise NotImplementedError

    async def list_mcp_pins(self) -> list[McpPinRecord]:
        """Every pin, by server and tool."""
        rows = await asyncio.to_thread(self._query, f"SELECT {_PIN} FROM mcp_tool_pins ORDER BY server, tool")
        return [McpPinRecord(str(s), str(t), str(h), str(b), float(a), bool(f)) for s, t, h, b, a, f in rows]

    async def replace_mcp_pins(self, server: str, pins: list[McpPinRecord], at: float) -> None:
        """Make `pins` (each approved at `at`) the server's only pins."""

        def write() -> None:
            for p in pins:
                self._execute(
                    f"INSERT INTO mcp_tool_pins ({_PIN}) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (server, tool) DO UPDATE SET sha256 = excluded.sha256, "
                    "approved_by = excluded.approved_by, approved_at = excluded.approved_at, forced = excluded.forced",
                    (server, p.tool, p.sha256, p.approved_by, at, p.forced),
                )
            self._execute("DELETE FROM mcp_tool_pins WHERE server = ? AND approved_at < ?", (server, at))

        await asyncio.to_thread(write)
