"""The dashboard as a Starlette sub-app, mounted at /ui by `create_app`; the gateway's services are bound later.

`Dashboard(routes=...)` is built with the app (the routes say which aliases are learned routers);
`bind(admin, audit)` is called from the lifespan once the services exist (before that, pages answer 503).
The sub-app has its own exception handlers, so errors under /ui render as HTML pages (or htmx fragments) rather
than the API's error JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from interlock.admin import AdminContext
from interlock.audit.log import AuditLog
from interlock.errors import GatewayError
from interlock.mcp.gateway import McpGateway
from interlock.ui import agents, governance, guardrails, ledger, mcp, records, roi, routing, signin
from interlock.ui.sessions import Sessions
from interlock.ui.web import (
    DashboardState,
    NotBound,
    SecurityHeaders,
    Services,
    SignInRequired,
    error_page,
    not_started,
    sign_in_required,
)

if TYPE_CHECKING:
    from interlock.routing.deployments import ModelRoute

STATIC = Path(__file__).parent / "static"


def _routes() -> list[BaseRoute]:
    return [
        Route("/", records.overview_page, methods=["GET"]),
        Route("/signin", signin.signin_page, methods=["GET"]),
        Route("/signin", signin.signin, methods=["POST"]),
        Route("/signout", signin.signout, methods=["POST"]),
        Route("/api/overview", records.overview_data, methods=["GET"]),
        Route("/api/guardrails", guardrails.verdict_data, methods=["GET"]),
        Route("/keys", governance.keys_page, methods=["GET"]),
        Route("/keys", governance.create_key, methods=["POST"]),
        Route("/keys/{key_id}/{action:str}", governance.key_action, methods=["POST"]),
        Route("/orgs", governance.orgs_page, methods=["GET"]),
        Route("/orgs", governance.create_org, methods=["POST"]),
        Route("/teams", governance.create_team, methods=["POST"]),
        Route("/budgets", governance.budgets_page, methods=["GET"]),
        Route("/budgets", governance.set_budget, methods=["POST"]),
        Route("/budgets/delete", governance.delete_budget, methods=["POST"]),
        Route("/rate-limits", governance.set_rate_limit, methods=["POST"]),
        Route("/rate-limits/delete", governance.delete_rate_limit, methods=["POST"]),
        Route("/ledger", ledger.ledger_page, methods=["GET"]),
        Route("/ledger/export", ledger.ledger_export, methods=["GET"]),
        Route("/ledger/{request_id}", ledger.ledger_detail, methods=["GET"]),
        Route("/audit", records.audit_page, methods=["GET"]),
        Route("/audit/verify", records.audit_verify, methods=["GET"]),
        Route("/guardrails", guardrails.guardrails_page, methods=["GET"]),
        Route("/guardrails", guardrails.set_guardrail_policy, methods=["POST"]),
        Route("/guardrails/delete", guardrails.delete_policy, methods=["POST"]),
        Route("/routing", routing.routing_page, methods=["GET"]),
        Route("/api/routing", routing.routing_data, methods=["GET"]),
        Route("/roi", roi.roi_page, methods=["GET"]),
        Route("/agents", agents.agents_page, methods=["GET"]),
        Route("/agents/halt", agents.halt, methods=["POST"]),
        Route("/agents/resume", agents.resume, methods=["POST"]),
        Route("/approvals/{approval_id}/{action:str}", agents.decide, methods=["POST"]),
        Route("/mcp", mcp.mcp_page, methods=["GET"]),
        Route("/mcp/{name}/approve", mcp.approve, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def router_targets(routes: Mapping[str, ModelRoute]) -> dict[str, tuple[str, ...]]:
    """Each router alias's target aliases, cheapest first (the router file's order), for the routing chart."""
    out: dict[str, tuple[str, ...]] = {}
    for alias, route in routes.items():
        spec = route.model.router
        if route.router is not None and spec is not None:
            out[alias] = tuple(spec.models.get(m, m) for m in route.router.models)
    return out


class Dashboard:
    """The web dashboard: its sessions and routes; `bind` hands it the running services."""

    def __init__(self, sessions: Sessions | None = None, routes: Mapping[str, ModelRoute] | None = None) -> None:
        self.state = DashboardState(sessions or Sessions())
        self.state.routers = router_targets(routes or {})
        self.app = Starlette(
            routes=_routes(),
            middleware=[Middleware(SecurityHeaders)],
            exception_handlers={
                GatewayError: error_page,
                SignInRequired: sign_in_required,
                NotBound: not_started,
            },
        )
        self.app.state.dashboard = self.state

    def bind(self, admin: AdminContext, audit: AuditLog, mcp: McpGateway | None = None) -> None:
        """Hand over the services, once the gateway has started them."""
        self.state.bound = Services(admin, audit, mcp)

    def routes(self) -> list[BaseRoute]:
        """The routes to add to the gateway: one mount (Starlette redirects /ui to /ui/; no OpenAPI entries)."""
        return [Mount("/ui", app=self.app)]
