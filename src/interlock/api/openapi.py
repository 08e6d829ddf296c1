"""The OpenAPI document, built from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from interlock.api.admin import KeyCreate
from interlock.translate.anthropic import AnthropicRequest
from interlock.types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse

_MODELS: list[type[BaseModel]] = [
    ChatRequest,
    ChatResponse,
    ChatChunk,
    EmbeddingRequest,
    EmbeddingResponse,
    AnthropicRequest,
    KeyCreate,
]

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
            "required": ["message", "type"],
        }
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(
    summary: str, body: str | None, ok: dict[str, Any], errors: tuple[int, ...], admin: bool = False
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}}},
    }
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    for status in errors:
        op["responses"][str(status)] = {
            "description": "error",
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    if admin:
        op["tags"] = ["admin"]
    return op


def openapi_document(version: str) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    _, defs = models_json_schema([(m, "validation") for m in _MODELS], ref_template="#/components/schemas/{model}")
    schemas = dict(defs.get("$defs", {}))
    schemas["Error"] = _ERROR
    chat_errors = (400, 401, 403, 404, 413, 429, 502, 503, 504)
    chat = _op(
        "Create a chat completion (stream: true answers with server-sent events)",
        "ChatRequest",
        _ref("ChatResponse"),
        chat_errors,
    )
    chat["responses"]["200"]["content"]["text/event-stream"] = {"schema": _ref("ChatChunk")}
    obj = {"type": "object"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Interlock", "version": version, "description": "A self-hosted AI gateway."},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/chat/completions": {"post": chat},
            "/v1/embeddings": {
                "post": _op("Create embeddings", "EmbeddingRequest", _ref("EmbeddingResponse"), chat_errors)
            },
            "/v1/messages": {"post": _op("Anthropic Messages API", "AnthropicRequest", obj, chat_errors)},
            "/v1/models": {"get": _op("List the models this key may use", None, obj, (401,))},
            "/v1/models/{model}": {"get": _op("Describe one model", None, obj, (401, 403, 404))},
            "/admin/keys": {
                "get": _op("List virtual keys", None, obj, (401, 403), admin=True),
                "post": _op(
                    "Create a virtual key (the key is returned once)",
                    "KeyCreate",
                    obj,
                    (400, 401, 403),
                    admin=True,
                ),
            },
            "/admin/keys/{key_id}/revoke": {"post": _op("Revoke a key", None, obj, (401, 403, 404), admin=True)},
            "/admin/spend": {"get": _op("Spend by key, model or day", None, obj, (400, 401, 403), admin=True)},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {
                "get": {
                    "summary": "Readiness: store open, models loaded",
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
                }
            },
        },
    }
