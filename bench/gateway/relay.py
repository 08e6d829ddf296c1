#!/usr/bin/env python3
"""A bare relay: the least an OpenAI-compatible proxy must do, as the gateway benchmark's yardstick.

Starlette + aiohttp, nothing else: check the bearer token against one fixed key, parse the request
JSON and serialise it again for the upstream, parse and re-serialise a complete answer, and pass a
stream's bytes through as they arrive (one write per upstream read). No ledger, no budgets, no
metrics, no usage counting, no disconnect watching, no error mapping beyond a 401 and a 400.

Run by `bench/gateway/run.py` beside the stub and Interlock, under uvicorn with the same options as
`interlock serve` (uvloop, the same httptools protocol that writes a response's head with its first
body bytes, no proxy headers, no access log), so the ratio measures the application, not the server:

    .venv/bin/python bench/gateway/relay.py --port 9200 --upstream http://127.0.0.1:9100/v1 --key sk-relay

For another ASGI server, `from_env()` builds the same app from RELAY_UPSTREAM and RELAY_KEY, e.g.
`granian --interface asgi --loop uvloop --factory --working-dir bench/gateway relay:from_env`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

_JSON = [(b"content-type", b"application/json")]


class PassThrough(Response):
    """Streams an open upstream response's bytes to the client as they arrive, then releases it."""

    def __init__(self, upstream: aiohttp.ClientResponse) -> None:
        self.background = None
        self._upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Relay every upstream read as one body message."""
        up = self._upstream
        try:
            ctype = up.headers.get("content-type", "text/event-stream").encode("latin-1")
            await send({"type": "http.response.start", "status": up.status, "headers": [(b"content-type", ctype)]})
            async for data in up.content.iter_any():
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            up.release()


def _error(status: int, message: str) -> Response:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})
    return Response(body, status, media_type="application/json")


def build_app(upstream: str, key: str) -> Starlette:
    """The relay app: POST /v1/chat/completions (and GET /readyz)."""
    url = upstream.rstrip("/") + "/chat/completions"
    expected = f"Bearer {key}"
    sessions: list[aiohttp.ClientSession] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)  # as the gateway's pool
        sessions.append(aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()))
        yield
        await sessions[0].close()

    async def chat(request: Request) -> Response:
        if request.headers.get("authorization") != expected:
            return _error(401, "invalid API key")
        try:
            data: Any = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "the body is not JSON")
        if not isinstance(data, dict):
            return _error(400, "the body must be a JSON object")
        up = await sessions[0].post(url, data=orjson.dumps(data), headers={"content-type": "application/json"})
        if data.get("stream") is True and up.status == 200:
            return PassThrough(up)
        try:
            raw = await up.read()
        finally:
            up.release()
        return Response(orjson.dumps(orjson.loads(raw)), up.status, media_type="application/json")

    async def ready(request: Request) -> Response:
        return Response(b'{"status": "ok"}', media_type="application/json")

    routes = [Route("/v1/chat/completions", chat, methods=["POST"]), Route("/readyz", ready)]
    return Starlette(routes=routes, lifespan=lifespan)


def from_env() -> Starlette:
    """The relay app from RELAY_UPSTREAM and RELAY_KEY (for an ASGI server's app factory)."""
    return build_app(os.environ["RELAY_UPSTREAM"], os.environ["RELAY_KEY"])


def main() -> None:
    """Serve the relay on 127.0.0.1."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="the upstream's /v1 base URL, e.g. http://127.0.0.1:9100/v1")
    p.add_argument("--key", required=True, help="the one bearer token accepted")
    args = p.parse_args()
    app = build_app(args.upstream, args.key)
    import uvicorn

    from interlock.server import CoalescingHttpToolsProtocol

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,
        access_log=False,
        proxy_headers=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
