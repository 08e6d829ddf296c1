"""The MCP server agents talk to: the `mcp` SDK's low-level `Server` over streamable HTTP, backed by `McpGateway`.

Authentication happens before a request reaches it (`api.mcp`): the HTTP layer checks the agent key on every
request of a session and puts the principal in the ASGI scope (`PRINCIPAL`); the handlers here read it from
the request the SDK hands them. So a halt, a suspension or an expiry stops the very next call of an open
session, and a session answers only the credential that opened it (the SDK compares `scope["user"]`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.types import Receive, Scope, Send

from interlock import __version__
from interlock.agents.policy import ToolPolicy
from interlock.auth.keys import Principal
from interlock.mcp.gateway import McpGateway

PRINCIPAL = "interlock.principal"
RUN_HEADER = "x-interlock-run-id"  # groups an agent's steps into a run (approvals may be bound to one)
NOT_AUTHENTICATED = -32001  # a JSON-RPC server error code: the request carried no usable agent credential


def principal_of(ctx: ServerRequestContext[Any, Any]) -> Principal:
    """The authenticated agent behind a request (set by the HTTP layer)."""
    scope = getattr(ctx.request, "scope", None)
    found = scope.get(PRINCIPAL) if isinstance(scope, dict) else None
    if not isinstance(found, Principal):
        raise MCPError(code=NOT_AUTHENTICATED, message="not authenticated: send 'Authorization: Bearer <agent key>'")
    return found


class McpService:
    """The SDK server and its session manager (one per app run), bound to the gateway in the lifespan."""

    def __init__(self) -> None:
        self.gateway: McpGateway | None = None
        self._policies: Callable[[str], ToolPolicy | None] = lambda _agent: None
        self.manager: StreamableHTTPSessionManager | None = None
        self.server: Server[Any] = Server(
            "interlock",
            version=__version__,
            instructions="Tools of the MCP servers Interlock fronts, named <server>__<tool>, governed by your policy.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    @contextlib.asynccontextmanager
    async def run(self, gateway: McpGateway, policies: Callable[[str], ToolPolicy | None]) -> AsyncIterator[None]:
        """Serve `/mcp` for the app's lifetime (a session manager runs once, so each run gets its own)."""
        self.gateway, self._policies = gateway, policies
        manager = StreamableHTTPSessionManager(app=self.server)
        async with manager.run():
            self.manager = manager
            try:
                yield
            finally:
                self.manager = None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand an authenticated HTTP request to the SDK's transport."""
        assert self.manager is not None, "the MCP service is not running"
        await self.manager.handle_request(scope, receive, send)

    def _policy(self, principal: Principal) -> ToolPolicy | None:
        return self._policies(principal.agent_id) if principal.agent_id else None

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        principal = principal_of(ctx)
        assert self.gateway is not None
        listed = [
            types.Tool(
                name=t.name,
                title=t.tool.title,
                description=t.tool.description,
                input_schema=t.tool.input_schema,
                annotations=t.tool.annotations,
            )
            for t in self.gateway.tools_for(self._policy(principal) or ToolPolicy())
        ]
        return types.ListToolsResult(tools=listed)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        principal = principal_of(ctx)
        assert self.gateway is not None
        headers = getattr(ctx.request, "headers", None)
        run_id = (headers.get(RUN_HEADER) or "")[:200] if headers is not None else ""
        return await self.gateway.call(principal, self._policy(principal), params.name, params.arguments, run_id=run_id)
