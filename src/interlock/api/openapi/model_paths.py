"""The model endpoints (/v1/...) and /metrics."""

from __future__ import annotations

from interlock.admin.usage import UsageQuery
from interlock.api.openapi.ops import (
    _INT,
    _NULLABLE_STR,
    _NUM,
    _STR,
    Schema,
    _also_ok,
    _event,
    _list_of,
    _obj,
    _op,
    _path,
    _query,
    _ref,
)
from interlock.api.responses import InputItemsQuery


def _model_paths() -> dict[str, Schema]:
    chat_event, json_event = _event(), _event(_obj({"type": _STR}))
    return {
        "/v1/chat/completions": {
            "post": _op("Create a chat completion", _ref("ChatResponse"), body="ChatRequest", stream=chat_event)
        },
        "/v1/completions": {
            "post": _op("Create a (legacy) completion", _ref("Completion"), body="CompletionRequest", stream=chat_event)
        },
        "/v1/embeddings": {"post": _op("Create embeddings", _ref("EmbeddingResponse"), body="EmbeddingRequest")},
        "/v1/responses": {
            "post": _op("Create a response", _ref("Response"), body="ResponsesRequest", stream=json_event)
        },
        "/v1/responses/input_tokens": {
            "post": _op(
                "Count a Responses prompt's input tokens",
                _obj({"object": {"const": "response.input_tokens"}, "input_tokens": _INT}),
                body="ResponsesRequest",
            )
        },
        "/v1/responses/{response_id}": {
            "get": _op("One of the caller's stored responses", _ref("Response"), params=_path("response_id")),
            "delete": _op(
                "Delete a stored response",
                _obj({"id": _STR, "object": {"const": "response"}, "deleted": {"const": True}}),
                params=_path("response_id"),
            ),
        },
        "/v1/responses/{response_id}/input_items": {
            "get": _op(
                "The input items of one of the caller's stored responses",
                _obj(
                    {
                        "object": {"const": "list"},
                        "data": {"type": "array", "items": _obj({"id": _STR, "type": _STR})},
                        "first_id": _NULLABLE_STR,
                        "last_id": _NULLABLE_STR,
                        "has_more": {"type": "boolean"},
                    }
                ),
                errors=(400, 401, 404),
                params=_path("response_id") + _query(InputItemsQuery),
            )
        },
        "/v1/messages": {
            "post": _op(
                "Anthropic Messages API",
                _ref("AnthropicMessage"),
                body="AnthropicRequest",
                flavor="anthropic",
                stream=json_event,
            )
        },
        "/v1/messages/count_tokens": {
            "post": _op("Count a prompt's tokens", _ref("TokenCount"), body="AnthropicPrompt", flavor="anthropic")
        },
        "/v1/usage": {
            "get": _op(
                "The calling key's own requests, tokens, cost and budgets",
                _obj(
                    {
                        "object": {"const": "usage"},
                        "requests": _INT,
                        "models": {"type": "array"},
                        "budgets": {"type": "array"},
                    }
                ),
                errors=(400, 401),
                params=_query(UsageQuery),
            )
        },
        "/v1/outcomes": {
            "post": _also_ok(
                _op(
                    "Report how one of the caller's requests or runs ended (idempotent: a repeat updates it)",
                    _obj(
                        {
                            "object": {"const": "outcome"},
                            "task_type": _STR,
                            "status": _STR,
                            "created": {"type": "boolean"},
                        },
                        request_id=_STR,
                        run_id=_STR,
                    ),
                    body="OutcomeReport",
                    status=201,
                    errors=(400, 401, 403, 404, 413),
                ),
                200,
            )
        },
        "/v1/feedback": {
            "post": _op(
                "Give a declared metric's value (and a comment or a corrected answer) on one of the caller's "
                "requests or runs",
                _obj(
                    {"object": {"const": "feedback"}, "id": _INT, "metric": _STR, "value": _NUM},
                    request_id=_STR,
                    run_id=_STR,
                ),
                body="FeedbackReport",
                status=201,
                errors=(400, 401, 403, 404, 413),
            )
        },
        "/v1/models": {"get": _op("List the models this key may use", _list_of(_ref("Model")), errors=(401,))},
        "/v1/models/{model}": {
            "get": _op("Describe one model", _ref("Model"), errors=(401, 403, 404), params=_path("model"))
        },
    }


def _metrics() -> Schema:
    """GET /metrics: Prometheus text, for the admin key, an admin_read key or the `[metrics] token`."""
    op = _op("Prometheus metrics", _STR, errors=(400, 401, 403, 404), tag="health")
    op["responses"]["200"]["content"] = {"text/plain": {"schema": _STR}}
    return op
