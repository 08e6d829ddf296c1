"""MCP servers: each upstream server the MCP gateway fronts, its tools with their pin status and scan flags,
and approving a server (pinning what it lists now).

Reads and approvals go through `interlock.admin.mcp`, which checks the role (approving takes the admin key)
and audits each approval; a server the poisoning scan flags is approved only with `force`, audited with the
flags it overrode.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from interlock.admin import mcp as services
from interlock.admin.mcp import McpApprove
from interlock.errors import Unavailable
from interlock.mcp.gateway import McpGateway
from interlock.ui.web import View, acting, render, viewer


def _gateway(view: View) -> McpGateway:
    if view.services.mcp is None:
        raise Unavailable("the MCP gateway is not running", code="mcp_unavailable")
    return view.services.mcp


async def _page(request: Request, view: View, **notice: Any) -> Response:
    servers = await services.list_servers(view.ctx, view.principal, _gateway(view))
    return render(request, "mcp.html", view, servers=servers, **notice)


async def mcp_page(request: Request) -> Response:
    """GET /ui/mcp."""
    return await _page(request, await viewer(request))


async def approve(request: Request) -> Response:
    """POST /ui/mcp/{name}/approve (`force` checked: approve although the scan flags a tool)."""
    view, form = await acting(request)
    name = request.path_params["name"]
    body = McpApprove(force=form.get("force") in ("on", "true", "1"))
    approved = await services.approve_server(view.ctx, view.principal, _gateway(view), name, body)
    forced = f" (forced past the scan flags on {', '.join(approved['forced'])})" if approved["forced"] else ""
    return await _page(request, view, notice=f"MCP server {name} approved: {len(approved['approved'])} pinned{forced}")
