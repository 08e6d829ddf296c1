"""`/mcp` (the MCP gateway, streamable HTTP) and the admin endpoints `/admin/mcp/servers…`.

`/mcp` takes an agent key (`Authorization: Bearer`), checked on every HTTP request exactly as a model
request's key is (revoked, expired, suspended, the agent or its owner inactive, a halt): a refusal answers
with the HTTP status of the error (401 or 403, `agent_halted` for a halt) and a JSON-RPC error body whose
message starts with the code, so the `mcp` SDK raises it as an `MCPError` that says why. Only agent keys
are served: the tools an MCP client sees and may call follow the agent's tool policy. A POST body over
`server.max_body_bytes` is refused (413, `request_too_large`) before the SDK reads it.
"""

from __future__ import annotations

from typing import Any

import orjson
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from interlock.admin import mcp as services
from interlock.admin.mcp import McpApprove as McpApprove  # api/openapi.py documents the body from here
from interlock.api.admin import MAX_BODY, caller
from interlock.api.http import JSONResponse, bearer_token, parse_json, read_body, validate
from interlock.api.state import AppState
from interlock.errors import Forbidden, GatewayError, Unavailable
from interlock.mcp.gateway import McpGateway
from interlock.mcp.server import NOT_AUTHENTICATED, PRINCIPAL, McpService


def _jsonrpc_error(exc: GatewayError) -> Response:
    data = exc.openai_body()["error"]
    payload = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": NOT_AUTHENTICATED, "message": f"{exc.code}: {exc.message}", "data": data},
    }
    return Response(orjson.dumps(payload), status_code=exc.status, media_type="application/json", headers=exc.headers)


class McpEndpoint:
    """The ASGI app at `/mcp`: authenticate, then hand over to the SDK's session manager."""

    def __init__(self, service: McpService) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        state: AppState | None = getattr(request.app.state, "interlock", None)
        try:
            if state is None or self.service.manager is None:
                raise Unavailable("the MCP gateway is starting; retry in a moment", code="mcp_unavailable")
            principal = await state.keys.authenticate(bearer_token(request))
            if principal.agent_id is None:
                raise Forbidden(
                    "the MCP gateway serves agents: authenticate with an agent's key (interlock agents create)",
                    code="agent_key_required",
                )
            if scope.get("method") == "POST":  # bounded like a model request's body, then handed on whole
                receive = _replay(await read_body(request, state.settings.server.max_body_bytes), receive)
        except GatewayError as exc:
            self.service.refused(exc.code)  # a halted agent's call counts as a halt, as a model request's does
            await _jsonrpc_error(exc)(scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        # The SDK binds a session to the credential that opened it (the key id, never the token).
        scope["user"] = AuthenticatedUser(AccessToken(token="", client_id=principal.key_id or "", scopes=[]))
        await self.service.handle(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over `body` (already read) first, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _gateway(request: Request) -> McpGateway:
    service: McpService | None = getattr(request.app.state, "mcp", None)
    if service is None or service.gateway is None:
        raise Unavailable("the MCP gateway is not running", code="mcp_unavailable")
    return service.gateway


async def list_servers(request: Request) -> Response:
    """GET /admin/mcp/servers."""
    ctx, actor = await caller(request)
    servers = await services.list_servers(ctx, actor, _gateway(request))
    return JSONResponse({"object": "list", "data": servers})


async def approve_server(request: Request) -> Response:
    """POST /admin/mcp/servers/{name}/approve (body optional: `{"force": true}`)."""
    ctx, actor = await caller(request)
    raw = await read_body(request, MAX_BODY)
    data: dict[str, Any] = parse_json(raw) if raw.strip() else {}
    approved = await services.approve_server(
        ctx, actor, _gateway(request), request.path_params["name"], validate(McpApprove, data)
    )
    return JSONResponse(approved)


ROUTES = [
    Route("/admin/mcp/servers", list_servers, methods=["GET"]),
    Route("/admin/mcp/servers/{name}/approve", approve_server, methods=["POST"]),
]
