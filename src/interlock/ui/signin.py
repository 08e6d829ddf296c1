"""Sign-in with the admin key, a read-only admin key or a governance key, and sign-out.

The key is posted once; the browser then holds only a session id, in a cookie that is HttpOnly,
SameSite=Strict, scoped to /ui and Secure when the request came over TLS. Sign-in and sign-out are
audited; a refused sign-in is audited as a denial (never with the key).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from interlock.audit.log import AuditEvent
from interlock.auth.keys import Principal
from interlock.errors import Forbidden, GatewayError
from interlock.ui.sessions import COOKIE
from interlock.ui.web import (
    SignInRequired,
    acting,
    is_https,
    read_form,
    render,
    require_signin_role,
    state_of,
    viewer,
)


def home_of(role: str) -> str:
    """Where a session starts: a governance key's on the agents page, the only one it may see."""
    return "/ui/agents" if role == "governance" else "/ui/"


def _same_origin(request: Request) -> bool:
    """False when the browser says the form was posted from another site (login CSRF)."""
    origin = request.headers.get("origin")
    return (
        origin is None
        or origin == f"{request.url.scheme}://{request.url.netloc}"
        or (is_https(request) and origin == f"https://{request.url.netloc}")
    )


async def signin_page(request: Request) -> Response:
    """GET /ui/signin."""
    try:
        view = await viewer(request, governance=True)
        return RedirectResponse(home_of(view.role), status_code=303)
    except SignInRequired:
        return render(request, "signin.html", None)


async def signin(request: Request) -> Response:
    """POST /ui/signin: the key in the form field `key`; a session on success, the form again with why not."""
    state = state_of(request)
    services = state.services()
    form = await read_form(request)
    principal: Principal | None = None
    try:
        if not _same_origin(request):
            raise Forbidden("sign-in was posted from another site", code="cross_site_signin")
        principal = await services.admin.keys.authenticate(form.get("key", "").strip())
        require_signin_role(principal)
    except GatewayError as exc:
        services.audit.record(
            AuditEvent.denial(
                "ui.signin",
                actor_id=principal.key_id if principal else None,
                actor_name=principal.name if principal else "anonymous",
                reason=exc.message,
                status=exc.status,
            )
        )
        message = (
            "the dashboard needs the admin key, a key with role admin_read or a governance key"
            if principal
            else exc.message
        )
        return render(request, "signin.html", None, status=exc.status, error=message)
    session = state.sessions.create(form["key"].strip())
    role = "admin" if principal.is_admin else "admin_read" if principal.admin_read else "governance"
    await services.audit.append(
        AuditEvent.admin("ui.signin", actor_id=principal.key_id, actor_name=f"ui:{principal.name}", role=role)
    )
    response = RedirectResponse(home_of(role), status_code=303)
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=int(state.sessions.ttl_s),
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


async def signout(request: Request) -> Response:
    """POST /ui/signout (CSRF-checked like every change): ends the session."""

    view, _ = await acting(request, governance=True)
    state_of(request).sessions.drop(view.session.id)
    await view.services.audit.append(
        AuditEvent.admin("ui.signout", actor_id=view.principal.key_id, actor_name=view.principal.name)
    )
    response = RedirectResponse("/ui/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict", secure=is_https(request))
    if request.headers.get("hx-request"):
        response.headers["hx-redirect"] = "/ui/signin"
    return response
