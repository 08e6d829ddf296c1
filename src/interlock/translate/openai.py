"""OpenAI-compatible upstreams <-> the gateway's types, as pure functions.

vLLM, SGLang, llama.cpp server, Ollama, OpenRouter, DeepSeek and OpenAI all speak this format; the
differences we care about (missing usage, odd error bodies) are handled here.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from interlock.errors import (
    BadRequest,
    GatewayError,
    RateLimited,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from interlock.types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse


def chat_payload(req: ChatRequest, upstream_model: str, *, stream: bool) -> dict[str, Any]:
    """The upstream request body: the client's request with the upstream model name.

    Streams always ask for usage, so the ledger gets the provider's own counts.
    """
    body = req.model_dump(exclude_none=True, by_alias=True, exclude={"stream", "stream_options"})
    if body.get("n") == 1:
        del body["n"]
    body["model"] = upstream_model
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def unsendable(body: dict[str, Any], exc: TypeError) -> GatewayError | TypeError:
    """What to raise when sending `body` failed with `exc`: a 400 if the body cannot be written as JSON.

    Called only after a failure, so the body is not serialised twice on the way out: orjson refuses
    what JSON input can still produce (nesting past its limit, integers past 64 bits), and that is the
    client's request, not a server error.
    """
    try:
        orjson.dumps(body)
    except TypeError as cause:
        return BadRequest(f"the request cannot be forwarded as JSON: {cause}", code="invalid_value")
    return exc


def embedding_payload(req: EmbeddingRequest, upstream_model: str) -> dict[str, Any]:
    """The upstream embeddings request body."""
    body = req.model_dump(exclude_none=True)
    body["model"] = upstream_model
    return body


def parse_chat_response(raw: bytes, alias: str) -> ChatResponse:
    """Parse an upstream completion; garbage becomes a 502 that says so."""
    try:
        data = orjson.loads(raw)
        data["model"] = alias
        return ChatResponse.model_validate(data)
    except (orjson.JSONDecodeError, ValidationError, TypeError) as exc:
        raise UpstreamError(
            f"upstream sent an invalid chat completion: {_short(exc)}", code="bad_upstream_response"
        ) from None


def parse_embedding_response(raw: bytes, alias: str) -> EmbeddingResponse:
    """Parse an upstream embeddings response."""
    try:
        data = orjson.loads(raw)
        data["model"] = alias
        data.setdefault("usage", {"prompt_tokens": 0, "total_tokens": 0})
        return EmbeddingResponse.model_validate(data)
    except (orjson.JSONDecodeError, ValidationError, TypeError) as exc:
        raise UpstreamError(
            f"upstream sent an invalid embeddings response: {_short(exc)}", code="bad_upstream_response"
        ) from None


def parse_chunk(data: bytes, alias: str) -> ChatChunk | None:
    """Parse one SSE `data:` payload; None for the `[DONE]` sentinel."""
    if data.strip() == b"[DONE]":
        return None
    if b'"error"' in data:
        stream_error(data)
    try:
        chunk = ChatChunk.model_validate_json(data)
    except ValidationError as exc:
        raise invalid_chunk(exc) from None
    chunk.__dict__["model"] = alias  # a plain store: pydantic's __setattr__ costs more than the parse's share
    return chunk


def stream_error(data: bytes) -> None:
    """Raise the upstream's error if this stream event is an error object (call it only when `"error"` is in it:
    a generic parse costs)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError("upstream sent a malformed stream event (not JSON)", code="bad_upstream_response") from None
    if isinstance(obj, dict) and "error" in obj:
        err = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
        raise UpstreamError(f"upstream error mid-stream: {err.get('message', 'unknown error')}")


def invalid_chunk(exc: ValidationError) -> UpstreamError:
    """The 502 for a stream event that is not JSON or not a chat chunk."""
    if any(e["type"] == "json_invalid" for e in exc.errors()):
        return UpstreamError("upstream sent a malformed stream event (not JSON)", code="bad_upstream_response")
    return UpstreamError(f"upstream sent an invalid stream chunk: {_short(exc)}", code="bad_upstream_response")


def error_from_upstream(status: int, raw: bytes, retry_after: str | None = None) -> GatewayError:
    """Map an upstream error answer to what the client should see.

    Client mistakes the upstream caught (400/422) pass through as 400. Upstream auth or missing-model
    errors are our configuration's fault, not the client's: 502. Upstream overload passes through.
    """
    message = _error_message(raw)
    if status in (400, 422):
        return BadRequest(f"upstream rejected the request: {message}", code="upstream_invalid_request")
    if status == 429:
        return RateLimited(
            f"upstream is rate limiting: {message}",
            code="upstream_rate_limited",
            headers={"Retry-After": retry_after or "1"},
        )
    if status in (408, 504):
        return UpstreamTimeout(f"upstream timed out: {message}")
    if status == 503:
        return Unavailable(f"upstream unavailable: {message}")
    return UpstreamError(f"upstream answered {status}: {message}")


def _error_message(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode("utf-8", "replace") or "no details"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err)[:500]
        return str(err)[:500]
    return str(data)[:500]


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]


class SSEDecoder:
    """Splits a byte stream into server-sent events; yields each event's `data` bytes."""

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self.event: bytes | None = None

    def feed(self, chunk: bytes) -> list[tuple[bytes | None, bytes]]:
        """Complete events (event name or None, data) found so far."""
        self._buf += chunk
        out: list[tuple[bytes | None, bytes]] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                return out
            line, self._buf = self._buf[:nl].rstrip(b"\r"), self._buf[nl + 1 :]
            if not line:
                if self._data:
                    out.append((self.event, b"\n".join(self._data)))
                self._data, self.event = [], None
            elif line.startswith(b"data:"):
                self._data.append(line[5:].lstrip(b" "))
            elif line.startswith(b"event:"):
                self.event = line[6:].strip()
            # comments (":") and other fields are ignored, as the SSE spec says

    def pending(self) -> bool:
        """Whether a partial event is buffered (the stream was cut inside an event)."""
        return bool(self._data or self._buf.strip())
