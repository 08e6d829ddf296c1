"""What every dashboard page shares: who is signed in, CSRF checks, form parsing, rendering and errors.

A page handler calls `viewer(request)` (no session: `SignInRequired`, answered with a redirect to the
sign-in page); a change handler calls `acting(request)`, which also reads the form and refuses it (403)
unless it carries the session's CSRF token. Changes go through `interlock.admin` services with the
principal as the actor, so each is checked for the role and audited there, whoever calls.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlock.admin import AdminContext
from interlock.audit.log import AuditEvent, AuditLog
from interlock.auth.keys import Principal, require_admin
from interlock.errors import BadRequest, Forbidden, GatewayError, PayloadTooLarge, describe_validation_error
from interlock.mcp.gateway import McpGateway
from interlock.settings import Settings
from interlock.ui.sessions import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, Sessions

M = TypeVar("M", bound=BaseModel)
MAX_FORM = 64 * 1024
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]  # fmt: skip


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in page."""


class NotBound(Exception):
    """The gateway's services are not started yet (the lifespan binds them)."""


class GovernanceOnly(Forbidden):
    """A governance key's session asked for a page other than the agents page."""

    def __init__(self, view: View) -> None:
        super().__init__(
            "a governance key signs in to halt and resume agents on the Agents page only; "
            "the other pages need the admin key or an admin_read key",
            code="governance_only",
        )
        self.view = view


@dataclass(frozen=True, slots=True)
class Services:
    """The running gateway's services the dashboard uses, bound once at startup."""

    admin: AdminContext
    audit: AuditLog
    mcp: McpGateway | None = None  # the MCP gateway, for the MCP servers page


@dataclass(frozen=True, slots=True)
class View:
    """One request from a signed-in browser."""

    services: Services
    session: Session
    principal: Principal  # as the admin services see it: its name marks the dashboard ("ui:admin")

    @property
    def ctx(self) -> AdminContext:
        """The admin services' context."""
        return self.services.admin

    @property
    def settings(self) -> Settings:
        """The gateway's settings."""
        return self.services.admin.settings

    @property
    def read_only(self) -> bool:
        """Whether this session may only look (a governance key may also halt and resume agents)."""
        return not self.principal.is_admin

    @property
    def role(self) -> str:
        """ "admin", "admin_read" or "governance": what the pages show and offer."""
        p = self.principal
        return "admin" if p.is_admin else "admin_read" if p.admin_read else "governance"


class DashboardState:
    """The dashboard's own state: its sessions, its templates and, once started, the gateway's services."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
        self.templates.env.filters.update(usd=usd, when=when)
        self.bound: Services | None = None
        self.routers: dict[str, tuple[str, ...]] = {}  # router alias -> its target aliases, cheapest first

    def services(self) -> Services:
        """The bound services; `NotBound` before the gateway has started."""
        if self.bound is None:
            raise NotBound
        return self.bound


def state_of(request: Request) -> DashboardState:
    """The dashboard state of the sub-app serving this request."""
    found = request.app.state.dashboard
    assert isinstance(found, DashboardState)
    return found


def usd(micros: int | float | None) -> str:
    """Micro-dollars as dollars, to the cent below $100 000 and the micro-dollar below a cent."""
    if micros is None:
        return "-"
    dollars = micros / 1_000_000
    return f"${dollars:,.6f}" if 0 < abs(dollars) < 0.01 else f"${dollars:,.2f}"


def when(ts: float | None) -> str:
    """Epoch seconds as a UTC time."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def is_https(request: Request) -> bool:
    """Whether the browser reached us over TLS (directly, or through a proxy that says so)."""
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or proto == "https"


def require_signin_role(principal: Principal) -> None:
    """Raise 403 unless the key may sign in: the admin key, an admin_read key or a governance key."""
    if not principal.governance:
        require_admin(principal, write=False)


async def viewer(request: Request, governance: bool = False) -> View:
    """The signed-in browser's view; `SignInRequired` without a live session or with a key no longer valid.

    A governance key's session sees only the pages that pass `governance=True` (the agents page, where it
    halts and resumes agents); any other page answers it 403.
    """
    state = state_of(request)
    services = state.services()
    session = state.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired
    try:
        principal = await services.admin.keys.authenticate(session.token)
        require_signin_role(principal)
    except GatewayError:
        state.sessions.drop(session.id)  # revoked, suspended, expired or demoted since sign-in
        raise SignInRequired from None
    view = View(services, session, dataclasses.replace(principal, name=f"ui:{principal.name}"))
    if view.role == "governance" and not governance:
        raise GovernanceOnly(view)
    return view


async def read_form(request: Request) -> dict[str, str]:
    """The url-encoded form in the body (the last value of a repeated field wins)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise PayloadTooLarge(f"the form is over {MAX_FORM} bytes")
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=200))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the form could not be read: {exc}") from None


async def acting(request: Request, governance: bool = False) -> tuple[View, dict[str, str]]:
    """A change from a signed-in browser: its view and form, once the CSRF token checks out (403 if not)."""
    view = await viewer(request, governance)
    form = await read_form(request)
    if not view.session.csrf_matches(request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)):
        raise Forbidden("this change carries no valid CSRF token; reload the page and try again", code="csrf_failed")
    return view, form


def parse(model: type[M], form: dict[str, str], **overrides: Any) -> M:
    """A service's typed input from form fields (empty fields count as absent), or a 400."""
    data: dict[str, Any] = {k: v for k, v in form.items() if v != "" and k != CSRF_FIELD}
    data.update(overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise describe_validation_error(exc) from None


def render(request: Request, template: str, view: View | None, status: int = 200, **context: Any) -> Response:
    """A page (or, for htmx, the same page: the client picks out the part it swaps)."""
    state = state_of(request)
    context.update(
        view=view,
        csrf=view.session.csrf if view else "",
        read_only=view.read_only if view else False,
        role=view.role if view else "",
        now=time.time(),
        path=request.url.path,
    )
    response = state.templates.TemplateResponse(request, template, context, status_code=status)
    response.headers["cache-control"] = "no-store"
    return response


async def error_page(request: Request, exc: Exception) -> Response:
    """A refused or failed change, shown in the page's message area (htmx) or as a page of its own."""
    assert isinstance(exc, GatewayError)
    try:
        view: View | None = exc.view if isinstance(exc, GovernanceOnly) else await viewer(request, governance=True)
    except (SignInRequired, NotBound):
        view = None
    if view is not None and request.method == "POST" and exc.status in (401, 403):
        # A refused change is a decision worth keeping, as on the admin API (`api.admin.caller`).
        view.services.audit.record(
            AuditEvent.denial(
                f"ui POST {request.url.path}",
                actor_id=view.principal.key_id,
                actor_name=view.principal.name,
                reason=exc.message,
                status=exc.status,
            )
        )
    response = render(request, "error.html", view, status=exc.status, error=exc)
    if request.headers.get("hx-request"):
        response.headers.update({"hx-retarget": "#flash", "hx-reswap": "innerHTML", "hx-reselect": "#error"})
    return response


async def sign_in_required(request: Request, exc: Exception) -> Response:
    """Send the browser to the sign-in page (htmx follows `HX-Redirect`)."""
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"hx-redirect": "/ui/signin"})
    return RedirectResponse("/ui/signin", status_code=303)


async def not_started(request: Request, exc: Exception) -> Response:
    """503 while the gateway is still starting."""
    return HTMLResponse("<p>Interlock is starting; reload in a moment.</p>", status_code=503)


class SecurityHeaders:
    """Adds the dashboard's security headers (CSP: scripts and styles from /ui/static only) to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, sending)
