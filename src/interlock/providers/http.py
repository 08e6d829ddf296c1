"""The HTTP call shared by remote providers: timeouts, transport errors, SSE reading.

Transport failures become gateway errors the client can understand: a refused connection is 503,
a reset or a stream cut short is 502, a timeout is 504.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
from pydantic import Field, field_validator
from yarl import URL

from interlock.errors import GatewayError, Unavailable, UpstreamError, UpstreamTimeout
from interlock.plugins import PluginOptions
from interlock.settings import ConfigError, ServerSettings
from interlock.translate.openai import SSEDecoder, error_from_upstream


class RemoteOptions(PluginOptions):
    """The options of a provider that calls an upstream over HTTP."""

    base_url: str = Field(min_length=1)  # also a shared key: pricing reads it to find the catalog entry
    api_key_env: str | None = None  # the *name* of the variable holding the key
    headers: dict[str, str] = Field(default_factory=dict)  # sent with every upstream request

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and (not v or not v.replace("_", "").isalnum()):
            raise ValueError("must be the *name* of an environment variable, such as OPENAI_API_KEY")
        return v


def client_timeout(server: ServerSettings) -> aiohttp.ClientTimeout:
    """Connect, first-byte (and between-bytes) and total timeouts for upstream calls."""
    return aiohttp.ClientTimeout(
        total=server.total_timeout, sock_connect=server.connect_timeout, sock_read=server.first_token_timeout
    )


def api_key_from_env(alias: str, options: RemoteOptions, source: str) -> str | None:
    """The upstream API key from the env var the config names; a missing variable stops the start."""
    if not options.api_key_env:
        return None
    key = os.environ.get(options.api_key_env)
    if not key:
        raise ConfigError(
            f"invalid config in {source}: models.{alias}.api_key_env: environment variable "
            f"{options.api_key_env} is not set"
        )
    return key


LARGE_BODY = 1 << 20  # aiohttp's own threshold for that warning (`payload.TOO_LARGE_BYTES_BODY`)


def _transport_error(exc: BaseException, url: str | URL) -> GatewayError:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Unavailable(
            f"cannot connect to the upstream at {url}: {exc.os_error or exc}", code="upstream_unreachable"
        )
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeout("the upstream did not answer in time")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamError("the upstream cut the response short", code="upstream_truncated")
    return UpstreamError(f"the upstream connection failed: {type(exc).__name__}", code="upstream_connection_error")


@asynccontextmanager
async def upstream_call(
    session: aiohttp.ClientSession,
    url: str | URL,
    body: dict[str, Any],
    headers: dict[str, str],
    timeouts: aiohttp.ClientTimeout,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """POST `body` as JSON; yields a 2xx response, raises a gateway error for anything else."""
    data = orjson.dumps(body)
    try:
        async with session.post(
            url,
            # aiohttp writes a large bytes body in one go, and warns that it may block the loop: such a
            # body (a long conversation, an inline file) goes as a stream, read in chunks, instead.
            data=data if len(data) < LARGE_BODY else io.BytesIO(data),
            headers={"content-type": "application/json", **headers},
            timeout=timeouts,
        ) as resp:
            if resp.status >= 400:
                raw = await resp.read()
                raise error_from_upstream(resp.status, raw, resp.headers.get("Retry-After"))
            yield resp
    except GatewayError:
        raise
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise _transport_error(exc, url) from None


async def read_body(resp: aiohttp.ClientResponse, url: str | URL) -> bytes:
    """The whole response body, with transport errors mapped."""
    try:
        return await resp.read()
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise _transport_error(exc, url) from None


async def sse_event_batches(
    resp: aiohttp.ClientResponse, url: str | URL
) -> AsyncIterator[list[tuple[bytes | None, bytes]]]:
    """Server-sent events (event name, data), in the batches that arrived together (never empty)."""
    decoder = SSEDecoder()
    try:
        async for chunk in resp.content.iter_any():
            events = decoder.feed(chunk)
            if events:
                yield events
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise _transport_error(exc, url) from None
    if decoder.pending():
        raise UpstreamError("the upstream stream ended inside an event", code="upstream_truncated")
