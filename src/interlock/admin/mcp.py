"""Admin services of the MCP gateway: the upstream servers' listing (tools, pins, scan flags) and approvals.

Approving a server pins each tool it lists now (`mcp.pins`); a server the poisoning scan flags is refused
unless `force` is given, and a forced approval is audited with the flags it overrode.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from interlock.admin.context import AdminContext, audit_action
from interlock.auth.keys import Principal, require_admin
from interlock.mcp.gateway import McpGateway


class McpApprove(BaseModel):
    """The body of `POST /admin/mcp/servers/{name}/approve`."""

    model_config = ConfigDict(extra="forbid")

    force: bool = False  # approve although the poisoning scan flags a tool (audited)


async def list_servers(ctx: AdminContext, actor: Principal, gateway: McpGateway) -> list[dict[str, Any]]:
    """Each upstream server with its tools: status (approved / changed / unapproved), hashes and flags."""
    require_admin(actor, write=False)
    return gateway.servers_report()


async def approve_server(
    ctx: AdminContext, actor: Principal, gateway: McpGateway, name: str, body: McpApprove
) -> dict[str, Any]:
    """Pin the server's current tools (409 when the scan flags one and `force` is not set)."""
    require_admin(actor)
    pins = await gateway.approve(name, actor.name, force=body.force)
    forced = [p.tool for p in pins if p.forced]
    await audit_action(
        ctx,
        actor,
        "mcp.approve",
        name,
        tools=",".join(p.tool for p in pins)[:1000],
        forced=bool(forced),
        flagged_tools=",".join(forced)[:1000],
    )
    report = next(s for s in gateway.servers_report() if s["name"] == name)
    return {
        "server": name,
        "approved": [p.tool for p in pins],  # pin keys: tool names, and prompt:/resource:/template: entries
        "forced": forced,
        "tools": report["tools"],
        "prompts_and_resources": report["prompts_and_resources"],
    }
