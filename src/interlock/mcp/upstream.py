"""One upstream MCP server: a stdio command or a streamable-HTTP URL, through the official `mcp` SDK client.

The connection lives in a task of its own (the SDK's transports are task-scoped context managers); calls
from request handlers go through it. The handshake era (`mode="legacy"`) is used because there servers
push `notifications/tools/list_changed` (and `prompts/…`, `resources/…`) on the session: each one calls
`on_change`, which re-lists the tools, prompts and resources and re-checks their pins. The upstream's
credentials (`env`, `headers`) are read from the config here and sent only to the upstream; they are never
logged and never reach an agent.

A connection that fails (the command exits, the URL is down) leaves the upstream `down` with the error's
type name; `connect()` again (the gateway retries on the next listing) opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import anyio
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from interlock.settings import McpServerSettings

log = logging.getLogger(__name__)

MAX_PAGES = 100


class UpstreamDown(Exception):
    """The upstream is not connected (or its connection broke)."""


class Upstream:
    """The connection to one configured upstream server."""

    def __init__(self, cfg: McpServerSettings, on_change: Callable[[str], Coroutine[Any, Any, object]]) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self._on_change = on_change
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self.error = ""

    @property
    def connected(self) -> bool:
        """Whether the connection is up."""
        return self._client is not None

    def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        c = self.cfg
        if c.command:
            env = {k: v.get_secret_value() for k, v in c.env.items()}
            return StdioServerParameters(command=c.command, args=list(c.args), env=env or None, cwd=c.cwd or None)
        headers = {k: v.get_secret_value() for k, v in c.headers.items()}
        http = create_mcp_http_client(headers=headers or None)
        stack.push_async_callback(http.aclose)  # the SDK leaves a client it was given open
        return streamable_http_client(c.url, http_client=http)

    async def connect(self, timeout_s: float = 30.0) -> bool:
        """Open the connection (if it is not open); False when it fails (`error` says how)."""
        async with self._lock:
            if self._client is not None:
                return True
            await self._end_task()
            self._stop = asyncio.Event()
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run(ready), name=f"interlock-mcp-{self.name}")
            try:
                await asyncio.wait_for(asyncio.shield(ready), timeout_s)
            except (TimeoutError, Exception) as exc:
                self.error = self.error or type(exc).__name__
                await self._end_task()
                log.warning("MCP server %r did not connect: %s", self.name, self.error)
                return False
            return True

    async def _run(self, ready: asyncio.Future[None]) -> None:
        async def changed(message: Any) -> None:
            if isinstance(
                message,
                types.ToolListChangedNotification
                | types.PromptListChangedNotification
                | types.ResourceListChangedNotification,
            ):
                asyncio.get_running_loop().create_task(self._on_change(self.name))

        try:
            async with (
                contextlib.AsyncExitStack() as stack,
                Client(self._transport(stack), mode="legacy", message_handler=changed, cache=None) as client,
            ):
                self._client = client
                self.error = ""
                if not ready.done():
                    ready.set_result(None)
                await self._stop.wait()
        except Exception as exc:  # a transport or handshake failure: the upstream is down, the gateway is not
            self.error = type(exc).__name__
            log.warning("MCP server %r: connection ended (%s)", self.name, self.error)
            if not ready.done():
                ready.set_exception(UpstreamDown(self.error))
        finally:
            self._client = None

    async def _end_task(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(task, 5)
        except (TimeoutError, Exception, asyncio.CancelledError):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def _require(self) -> Client:
        if self._client is None:
            raise UpstreamDown(self.error or "not connected")
        return self._client

    async def list_tools(self) -> list[types.Tool]:
        """Every tool the server lists now (all pages)."""
        client = self._require()
        return await _pages(lambda c: client.list_tools(cursor=c, cache_mode="refresh"), "tools")

    def offers(self, capability: str) -> bool:
        """Whether the server declared `prompts` or `resources` in its handshake."""
        client = self._require()
        return getattr(client.server_capabilities, capability, None) is not None

    async def list_prompts(self) -> list[types.Prompt]:
        """Every prompt the server lists now (all pages; none when it offers no prompts)."""
        if not self.offers("prompts"):
            return []
        client = self._require()
        return await _pages(lambda c: client.list_prompts(cursor=c, cache_mode="refresh"), "prompts")

    async def list_resources(self) -> list[types.Resource | types.ResourceTemplate]:
        """Every resource and resource template the server lists now (all pages; none when it offers none)."""
        if not self.offers("resources"):
            return []
        client = self._require()
        found: list[types.Resource | types.ResourceTemplate] = []
        found += await _pages(lambda c: client.list_resources(cursor=c, cache_mode="refresh"), "resources")
        found += await _pages(
            lambda c: client.list_resource_templates(cursor=c, cache_mode="refresh"), "resource_templates"
        )
        return found

    async def get_prompt(self, name: str, arguments: dict[str, str]) -> types.GetPromptResult:
        """One prompt, rendered by the server with `arguments`, within the server's `timeout_s`."""
        client = self._require()
        with anyio.fail_after(self.cfg.timeout_s):
            return await client.get_prompt(name, arguments)

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        """One resource's contents (never cached: each read reaches the server), within `timeout_s`."""
        client = self._require()
        with anyio.fail_after(self.cfg.timeout_s):
            return await client.read_resource(uri, cache_mode="bypass")

    async def call_tool(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """Call one tool, within the server's `timeout_s`."""
        client = self._require()
        with anyio.fail_after(self.cfg.timeout_s):
            result = await client.call_tool(tool, arguments)
        if not isinstance(result, types.CallToolResult):
            raise UpstreamDown(f"the server answered {type(result).__name__}, not a tool result")
        return result

    async def close(self) -> None:
        """End the connection (a stdio server's process exits with it)."""
        async with self._lock:
            await self._end_task()


async def _pages(fetch: Callable[[str | None], Awaitable[Any]], field: str) -> list[Any]:
    """Every item of a paginated listing (`field` of each page), at most `MAX_PAGES` pages."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await fetch(cursor)
        items.extend(getattr(page, field))
        if (cursor := page.next_cursor) is None:
            break
    return items
