"""One error tree for the whole gateway, rendered as OpenAI's or Anthropic's error JSON.

Every failure a client can see is a `GatewayError` with a status, a machine-readable type and code,
and a message that says what to fix. Nothing else reaches the client; anything unexpected becomes a
generic 500 whose details stay in the server log.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

__all__ = [
    "BadRequest",
    "BudgetExceeded",
    "Forbidden",
    "GatewayError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "UpstreamError",
    "UpstreamTimeout",
    "describe_validation_error",
]

# Anthropic names its error types differently; map by HTTP status.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
}


class GatewayError(Exception):
    """An error the client sees, with its HTTP status."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def openai_body(self) -> dict[str, Any]:
        """OpenAI's error JSON."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def anthropic_body(self) -> dict[str, Any]:
        """Anthropic's error JSON."""
        return {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPES.get(self.status, "api_error"), "message": self.message},
        }


class BadRequest(GatewayError):
    """400: the request is malformed or asks for something impossible."""

    status = 400
    type = "invalid_request_error"


class Unauthorized(GatewayError):
    """401: no key, or a key that is unknown, expired or revoked."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(GatewayError):
    """403: the key is valid but may not do this."""

    status = 403
    type = "permission_error"
    code = "insufficient_scope"


class NotFound(GatewayError):
    """404: no such model or resource."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(GatewayError):
    """413: the body is over the configured limit."""

    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GatewayError):
    """429: a limit or the engine's queue is full; `Retry-After` says when to come back."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(GatewayError):
    """429: a budget cannot pay for this (OpenAI's `insufficient_quota`)."""

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class UpstreamError(GatewayError):
    """502: the upstream answered with an error or garbage."""

    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class Unavailable(GatewayError):
    """503: nothing can serve the request right now."""

    status = 503
    type = "service_unavailable"
    code = "unavailable"


class UpstreamTimeout(GatewayError):
    """504: the upstream did not answer in time."""

    status = 504
    type = "upstream_error"
    code = "timeout"


def describe_validation_error(exc: ValidationError) -> BadRequest:
    """Turn pydantic's report into one 400 naming the first bad field and what is wrong with it."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = _location(first)
    # A union reports every member's failure at one place; a plain type mismatch ("should be a valid
    # string") says less than what was wrong with the member the value was meant for ("at most 10000 items").
    for other in errors:
        if _location(other) == loc and not other["type"].endswith("_type"):
            first = other
            break
    msg = first["msg"]
    if first["type"] == "missing":
        text = f"'{loc}' is required"
    elif first["type"] == "extra_forbidden":
        text = f"unknown field '{loc}'"
    else:
        text = f"invalid '{loc}': {msg}" if loc else msg
    extra = exc.error_count() - 1
    if extra:
        text += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return BadRequest(text, param=loc or None, code="invalid_value")


def _location(error: Any) -> str:
    """An error's location as the client wrote it: union member names (pydantic's tags) left out."""
    return ".".join(str(p) for p in error["loc"] if not (isinstance(p, str) and (p in _UNION_TAGS or "[" in p)))


# pydantic puts union member names into error locations; they mean nothing to a client.
_UNION_TAGS = {
    "str",
    "list[str]",
    "list[int]",
    "list[list[int]]",
    "list[union[TextPart,ImagePart]]",
    "TextPart",
    "ImagePart",
    "NamedToolChoice",
    "function-after[_has_name(), NamedToolChoice]",
    "literal['none','auto','required']",
}
