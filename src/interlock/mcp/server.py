"""The MCP server agents talk to: the `mcp` SDK's low-level `Server` over streamable HTTP, backed by `McpGateway`.

Authentication happens before a request reaches it (`api.mcp`): the HTTP layer checks the agent key on every
request of a session and puts the principal in the ASGI scope (`PRINCIPAL`); the handlers here read it from
the request the SDK hands them. So a halt, a suspension or an expiry stops the very next call of an open
session, and a session answers only the credential that opened it (the SDK compares `scope["user"]`).

A tools/call of a stopped run (`mcp.gateway`: a run cap, the loop breaker, or the run state unreachable) is
answered with a JSON-RPC error (`RUN_STOPPED`) whose message starts with the code (`run_step_cap: …`) and
whose data is the error object a model request gets (`code`, `message`, `type`), so the SDK raises an
`MCPError` that says why. Tool changes reach the agents' sessions as `notifications/tools/list_changed`
(`notifications`; `tools.listChanged` is advertised in both protocol eras).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions
from mcp.server.models import InitializationOptions
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.types import Receive, Scope, Send

from interlock import __version__
from interlock.agents.policy import ToolPolicy
from interlock.auth.keys import Principal
from interlock.errors import GatewayError
from interlock.mcp.gateway import McpGateway
from interlock.mcp.ledger import run_key
from interlock.mcp.notifications import ToolListNotifier

PRINCIPAL = "interlock.principal"
RUN_HEADER = "x-interlock-run-id"  # groups an agent's steps into a run (approvals may be bound to one)
RUN_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # what the header accepts, as on model requests
NOT_AUTHENTICATED = -32001  # a JSON-RPC server error code: the request carried no usable agent credential
RUN_STOPPED = -32002  # a JSON-RPC server error code: the call's run is stopped (a cap, a loop) or uncheckable


def principal_of(ctx: ServerRequestContext[Any, Any]) -> Principal:
    """The authenticated agent behind a request (set by the HTTP layer)."""
    scope = getattr(ctx.request, "scope", None)
    found = scope.get(PRINCIPAL) if isinstance(scope, dict) else None
    if not isinstance(found, Principal):
        raise MCPError(code=NOT_AUTHENTICATED, message="not authenticated: send 'Authorization: Bearer <agent key>'")
    return found


class _Server(Server[Any]):
    """The SDK's low-level server, advertising `tools.listChanged` to handshake-era clients too."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        """The handshake's options, with tool-list changes announced (see `notifications`)."""
        options = notification_options or NotificationOptions(tools_changed=True)
        return super().create_initialization_options(options, experimental_capabilities, extensions)


class McpService:
    """The SDK server and its session manager (one per app run), bound to the gateway in the lifespan."""

    def __init__(self) -> None:
        self.gateway: McpGateway | None = None
        self._policies: Callable[[str], ToolPolicy | None] = lambda _agent: None
        self.manager: StreamableHTTPSessionManager | None = None
        self.refused: Callable[[str | None], None] = lambda _code: None  # the halt metric (`Metrics.agent_refused`)
        self.notifier = ToolListNotifier()
        self.server: Server[Any] = _Server(
            "interlock",
            version=__version__,
            instructions="Tools of the MCP servers Interlock fronts, named <server>__<tool>, governed by your policy.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_resource_templates,
            on_read_resource=self._read_resource,
            on_subscriptions_listen=self._listen,
        )

    @contextlib.asynccontextmanager
    async def run(
        self,
        gateway: McpGateway,
        policies: Callable[[str], ToolPolicy | None],
        refused: Callable[[str | None], None] | None = None,
    ) -> AsyncIterator[None]:
        """Serve `/mcp` for the app's lifetime (a session manager runs once, so each run gets its own).

        `refused` is told the code of every refusal of an agent's request (a halt, a stopped run), for metrics.
        """
        self.gateway, self._policies = gateway, policies
        if refused is not None:
            self.refused = refused
        self.notifier = notifier = ToolListNotifier()
        gateway.watch(notifier.notify)
        manager = StreamableHTTPSessionManager(app=self.server)
        async with manager.run():
            self.manager = manager
            try:
                yield
            finally:
                notifier.close()
                self.manager = None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand an authenticated HTTP request to the SDK's transport."""
        assert self.manager is not None, "the MCP service is not running"
        await self.manager.handle_request(scope, receive, send)

    def _enter(self, ctx: ServerRequestContext[Any, Any]) -> tuple[Principal, McpGateway]:
        """The request's agent and the gateway; remembers the session for change notifications."""
        principal = principal_of(ctx)
        assert self.gateway is not None, "the MCP service is not running"
        self.notifier.seen(ctx)
        return principal, self.gateway

    def _policy(self, principal: Principal) -> ToolPolicy | None:
        return self._policies(principal.agent_id) if principal.agent_id else None

    async def _listen(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        principal_of(ctx)
        return await self.notifier.listen(ctx, params)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        principal, gateway = self._enter(ctx)
        listed = [
            types.Tool(
                name=t.name,
                title=t.tool.title,
                description=t.tool.description,
                input_schema=t.tool.input_schema,
                annotations=t.tool.annotations,
            )
            for t in gateway.tools_for(self._policy(principal) or ToolPolicy())
        ]
        return types.ListToolsResult(tools=listed)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        principal, gateway = self._enter(ctx)
        run_id, session_id = _run_and_session(ctx)
        try:
            return await gateway.call(
                principal, self._policy(principal), params.name, params.arguments, run_id=run_id, session_id=session_id
            )
        except GatewayError as exc:  # a stopped run: an error the agent's framework raises, not a tool result
            self.refused(exc.code)
            raise MCPError(
                code=RUN_STOPPED, message=f"{exc.code}: {exc.message}", data=exc.openai_body()["error"]
            ) from None

    async def _list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        principal, gateway = self._enter(ctx)
        listed = [p.prompt.model_copy(update={"name": p.name}) for p in gateway.prompts_for(self._policy(principal))]
        return types.ListPromptsResult(prompts=listed)

    async def _get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        principal, gateway = self._enter(ctx)
        run_id, session_id = _run_and_session(ctx)
        run = run_key(run_id, session_id)
        return await gateway.get_prompt(principal, self._policy(principal), params.name, params.arguments, run)

    async def _list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        principal, gateway = self._enter(ctx)
        found = gateway.resources_for(self._policy(principal), "resource")
        return types.ListResourcesResult(
            resources=[r.entry.model_copy(update={"uri": r.uri}) for r in found if isinstance(r.entry, types.Resource)]
        )

    async def _list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        principal, gateway = self._enter(ctx)
        found = gateway.resources_for(self._policy(principal), "template")
        return types.ListResourceTemplatesResult(
            resource_templates=[
                r.entry.model_copy(update={"uri_template": r.uri})
                for r in found
                if isinstance(r.entry, types.ResourceTemplate)
            ]
        )

    async def _read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        principal, gateway = self._enter(ctx)
        run_id, session_id = _run_and_session(ctx)
        run = run_key(run_id, session_id)
        return await gateway.read_resource(principal, self._policy(principal), str(params.uri), run)


def _run_and_session(ctx: ServerRequestContext[Any, Any]) -> tuple[str, str]:
    """The request's `x-interlock-run-id` (checked) and MCP session id ("" when absent)."""
    headers = getattr(ctx.request, "headers", None)
    run_id = (headers.get(RUN_HEADER) or "") if headers is not None else ""
    if run_id and not RUN_ID.fullmatch(run_id):
        raise MCPError(
            code=types.INVALID_PARAMS, message=f"header {RUN_HEADER} must be 1 to 128 of A-Z a-z 0-9 . _ : -"
        )
    session_id = (headers.get(MCP_SESSION_ID_HEADER) or "")[:200] if headers is not None else ""
    return run_id, session_id
