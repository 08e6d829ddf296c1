"""HTTP plumbing shared by the endpoints: body limits, JSON parsing, keys, error responses, SSE."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from interlock.errors import (
    BadRequest,
    GatewayError,
    PayloadTooLarge,
    describe_validation_error,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class JSONResponse(Response):
    """A JSON response rendered with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise with orjson."""
        return orjson.dumps(content)


ERROR_CODE_HEADER = "x-interlock-error-code"


def flavor_of(path: str) -> str:
    """The error shape of a path: Anthropic's under `/v1/messages`, OpenAI's everywhere else."""
    return "anthropic" if path == "/v1/messages" or path.startswith("/v1/messages/") else "openai"


def error_headers(exc: GatewayError, flavor: str) -> dict[str, str]:
    """The error's own headers (`Retry-After`, ...), and in Anthropic's shape, which has no `code`, the code.

    Every error answer in Anthropic's shape gets its headers here (`error_response`, and the exchange's
    `fail` for the errors of a model request), so no refusal goes out without the header: an error
    with no code of its own names its type (`server_error`, `invalid_request_error`).
    """
    if flavor != "anthropic":
        return exc.headers
    return {**exc.headers, ERROR_CODE_HEADER: exc.code or exc.type}


def error_response(exc: GatewayError, flavor: str = "openai", headers: dict[str, str] | None = None) -> Response:
    """The error as OpenAI's (or Anthropic's) JSON, with its status and headers."""
    body = exc.anthropic_body() if flavor == "anthropic" else exc.openai_body()
    return JSONResponse(body, status_code=exc.status, headers={**error_headers(exc, flavor), **(headers or {})})


def bearer_token(request: Request) -> str | None:
    """The key from `Authorization: Bearer` or `x-api-key` (Anthropic's SDK)."""
    return token_from(request.headers.get("authorization"), request.headers.get("x-api-key"))


def token_from(authorization: str | None, api_key: str | None) -> str | None:
    """`bearer_token` from the two headers' values (an `Authorization` header wins, even a bad one)."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return api_key or None


def headers_named(scope: Scope, names: frozenset[bytes]) -> dict[bytes, str]:
    """The first value of each of these (lower-case) headers the request has, decoded as Starlette does.

    One pass over the headers, where each `request.headers.get` is one (and a missing header raises and
    catches a KeyError inside Starlette): the model endpoints read five of them on every request.
    """
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in names and name not in found:
            found[name] = value.decode("latin-1")
    return found


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    # isascii: str.isdigit also takes "²", which int() refuses; a 5,000-digit length is over any limit (and int()
    # refuses that too).
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and (len(declared) > 18 or int(declared) > limit)
    ):
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> dict[str, Any]:
    """A JSON object from the body, or a 400 saying what is wrong with it."""
    if not raw:
        raise BadRequest("request body is empty; send a JSON object", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest(f"request body must be a JSON object, not {type(data).__name__}", code="invalid_json")
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    """`data` as `model`, or a 400 naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise describe_validation_error(exc) from None


def sse_frame(data: bytes, event: str | None = None) -> bytes:
    """One server-sent event."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + data + b"\n\n"
