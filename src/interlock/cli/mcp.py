"""`interlock mcp servers` and `interlock mcp approve SERVER`: the MCP gateway's upstream servers and their pins.

The command connects to the configured upstream servers itself (it starts stdio servers as the gateway
does), lists their tools and compares them with the pins in the store; `approve` pins what it sees now. A
running gateway picks up new pins within `mcp.refresh_s`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from interlock.admin import AdminContext
from interlock.admin import mcp as services
from interlock.admin.mcp import McpApprove
from interlock.auth.keys import Principal
from interlock.cli.options import ConfigOption
from interlock.cli.services import call
from interlock.mcp.gateway import McpGateway

app = typer.Typer(
    help="The MCP gateway's upstream servers: list them, approve (pin) their tools.", no_args_is_help=True
)


async def _with_gateway(ctx: AdminContext, work: Any) -> Any:
    gateway = McpGateway(ctx.settings.mcp, ctx.store)
    await gateway.start(refresh=False)
    try:
        return await work(gateway)
    finally:
        await gateway.close()


def _print(data: object) -> None:
    Console().print_json(json.dumps(data, default=str))


@app.command("servers")
def servers(config: ConfigOption = None) -> None:
    """Each configured server: connected or not, its tools (approved / changed / unapproved) and scan flags."""

    async def run(ctx: AdminContext, actor: Principal) -> Any:
        return await _with_gateway(ctx, lambda g: services.list_servers(ctx, actor, g))

    _print(call(config, run))


@app.command("approve")
def approve(
    server: Annotated[str, typer.Argument(help="The server's name, as in [[mcp.servers]]")],
    force: Annotated[bool, typer.Option(help="Approve although the poisoning scan flags a tool (audited)")] = False,
    config: ConfigOption = None,
) -> None:
    """Pin the server's tools as they are listed now (refused when the scan flags one, unless --force)."""

    async def run(ctx: AdminContext, actor: Principal) -> Any:
        body = McpApprove(force=force)
        return await _with_gateway(ctx, lambda g: services.approve_server(ctx, actor, g, server, body))

    _print(call(config, run))
