"""The model endpoints, dispatched straight to their handlers.

Every request and every streamed frame otherwise passes through Starlette's error and exception
middleware, its router and its per-send wrappers: about a tenth of the gateway's CPU per streamed
request (profile in bench/RESULTS.md). The handlers already turn every expected failure into an error
response, so for these few exact paths the wrapper only adds the last-resort 500. Everything else,
lifespan included, goes to the Starlette app unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


class HotPaths:
    """An ASGI app: exact (method, path) pairs to handlers, the rest to `app`."""

    def __init__(self, app: Starlette, routes: Mapping[tuple[str, str], Handler], on_error: ErrorHandler) -> None:
        self.app = app
        self._routes = routes
        self._on_error = on_error

    @property
    def state(self) -> State:
        """The Starlette app's state (where the running services live)."""
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a hot path directly, or hand the request to Starlette."""
        handler = (
            self._routes.get((scope.get("method", ""), scope.get("path", ""))) if scope["type"] == "http" else None
        )
        if handler is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:
            response = await self._on_error(request, exc)
        await response(scope, receive, send)
