"""The OpenAPI 3.1 document, built from the same pydantic models that validate requests.

Request bodies and query parameters come from the models the handlers validate with; responses from
the models (or records) the handlers render, in serialization mode. Every route of the app has an
entry here (`tests/api/test_openapi.py` fails otherwise), and `tests/api/test_schemathesis.py` holds
the app to what this document says.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from interlock.admin import (
    BudgetRef,
    BudgetSet,
    GuardrailPolicy,
    GuardrailRef,
    GuardrailSet,
    KeyCreate,
    KeySuspend,
    OrgCreate,
    OutcomeReport,
    RateLimitRef,
    RateLimitSet,
    RoiQuery,
    RoiRow,
    SpendQuery,
    TeamCreate,
)
from interlock.admin.agents import AgentCreate, HaltSet, OwnerCreate
from interlock.admin.usage import UsageQuery
from interlock.api.completions import CompletionRequest
from interlock.api.responses import InputItemsQuery
from interlock.store.agent_queries import HaltRecord, OwnerRecord
from interlock.store.records import BudgetRecord, KeyRecord, OrgRecord, RateLimitRecord, SpendRow, TeamRecord
from interlock.translate.anthropic import AnthropicPrompt, AnthropicRequest
from interlock.translate.responses import ResponsesRequest
from interlock.types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse

Schema = dict[str, Any]

_BODIES: tuple[type[BaseModel], ...] = (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    ResponsesRequest,
    AnthropicRequest,
    AnthropicPrompt,
    KeyCreate,
    KeySuspend,
    OrgCreate,
    TeamCreate,
    BudgetSet,
    RateLimitSet,
    GuardrailSet,
    OutcomeReport,
    OwnerCreate,
    AgentCreate,
    HaltSet,
)
_RENDERED: tuple[type[Any], ...] = (
    ChatResponse,
    ChatChunk,
    EmbeddingResponse,
    KeyRecord,
    SpendRow,
    OrgRecord,
    TeamRecord,
    BudgetRecord,
    RateLimitRecord,
    GuardrailPolicy,
    RoiRow,
    OwnerRecord,
    HaltRecord,
)
MODEL_ERRORS = (400, 401, 403, 404, 413, 429, 502, 503, 504)
ADMIN_ERRORS = (400, 401, 403, 404, 413)

_STR, _INT, _NUM, _OBJ = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "object"}
_NULLABLE_STR = {"type": ["string", "null"]}


def _obj(required: dict[str, Any], **optional: Any) -> Schema:
    """An object with these required properties (more are allowed)."""
    return {"type": "object", "properties": {**required, **optional}, "required": list(required)}


def _list_of(item: Schema) -> Schema:
    return _obj({"object": {"const": "list"}, "data": {"type": "array", "items": item}})


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _event(data: Schema | None = None) -> Schema:
    """One server-sent event (OpenAPI 3.1: the `text/event-stream` schema describes each event)."""
    payload: Schema = {"type": "string"}
    if data is not None:
        payload |= {"contentMediaType": "application/json", "contentSchema": data}
    return _obj({"data": payload}, event=_STR, id=_STR)


def _hand_written(model: dict[type[Any], Schema]) -> dict[str, Schema]:
    """Response shapes rendered from dicts, and the two error flavours."""
    key = dict(model[KeyRecord])
    key["properties"] = {k: v for k, v in key["properties"].items() if k != "hash"}
    key["properties"]["status"] = {"enum": ["active", "revoked", "expired", "suspended"]}
    key["required"] = [r for r in key.get("required", []) if r != "hash"] + ["status"]
    budget = dict(model[BudgetRecord])
    budget["properties"] = {
        **budget["properties"],
        "spent_micros": _INT,
        "reserved_micros": _INT,
        "remaining_micros": _INT,
    }
    usage = {"type": ["object", "null"]}
    return {
        "Error": _obj({"error": _obj({"message": _STR, "type": _STR}, param=_NULLABLE_STR, code=_NULLABLE_STR)}),
        "AnthropicError": _obj({"type": {"const": "error"}, "error": _obj({"type": _STR, "message": _STR})}),
        "Key": key,
        "CreatedKey": {"allOf": [_ref("Key"), _obj({"key": _STR})]},
        "BudgetStatus": budget,
        "Model": _obj(
            {"id": _STR, "object": {"const": "model"}, "created": _INT, "owned_by": _STR},
            mode=_STR,
            context_window={"type": ["integer", "null"]},
        ),
        "Completion": _obj(
            {"id": _STR, "object": {"const": "text_completion"}, "created": _INT, "model": _STR},
            choices={"type": "array", "items": _obj({"text": _STR, "index": _INT})},
            usage=usage,
        ),
        "Response": _obj({"id": _STR, "object": {"const": "response"}, "status": _STR, "output": {"type": "array"}}),
        "AnthropicMessage": _obj(
            {"id": _STR, "type": {"const": "message"}, "role": {"const": "assistant"}, "content": {"type": "array"}},
            model=_STR,
            stop_reason=_NULLABLE_STR,
            stop_sequence=_NULLABLE_STR,
            usage=_obj({"input_tokens": _INT, "output_tokens": _INT}),
        ),
        "TokenCount": _obj({"input_tokens": _INT}),
        "Agent": _obj(
            {"id": _STR, "name": _STR, "owner_id": _STR, "description": _STR, "status": _STR, "policy": _OBJ},
            models={"type": "array", "items": _STR},
            created_at=_NUM,
            expires_at={"type": ["number", "null"]},
            keys={"type": "array", "items": _ref("Key")},
            halt={"anyOf": [_ref("HaltRecord"), {"type": "null"}]},
        ),
        "CreatedAgent": {"allOf": [_ref("Agent"), _obj({"key": _STR, "key_id": _STR})]},
        "Spend": _obj(
            {
                "object": {"const": "list"},
                "group": _STR,
                "data": {"type": "array", "items": model[SpendRow]},
                "summary": _obj({"spent_micros": _INT, "reference_cost_micros": _INT}),
            }
        ),
    }


def _components() -> dict[str, Schema]:
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        *((m.__name__, "validation", TypeAdapter(m)) for m in _BODIES),
        *((m.__name__, "serialization", TypeAdapter(m)) for m in _RENDERED),
    ]
    refs, defs = TypeAdapter.json_schemas(inputs, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Schema] = dict(defs.get("$defs", {}))
    rendered = {m: schemas[refs[(m.__name__, "serialization")]["$ref"].rsplit("/", 1)[1]] for m in _RENDERED}
    for key, mode, _ in inputs:
        schemas.setdefault(key, refs[(key, mode)])  # one name per model, whatever pydantic suffixed
    return {**schemas, **_hand_written(rendered)}


def _query(model: type[BaseModel]) -> list[Schema]:
    """The query parameters a model validates; `null` is dropped: an absent parameter is the null."""
    schema = model.model_json_schema()
    params = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k not in ("default", "title")}
        if "anyOf" in prop:
            (prop,) = [p for p in prop.pop("anyOf") if p.get("type") != "null"]
        params.append({"name": name, "in": "query", "required": name in schema.get("required", []), "schema": prop})
    return params


def _path(*names: str) -> list[Schema]:
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}} for n in names]


def _op(
    summary: str,
    ok: Schema,
    *,
    body: str | None = None,
    body_required: bool = True,
    status: int = 200,
    errors: tuple[int, ...] = MODEL_ERRORS,
    flavor: str = "openai",
    stream: Schema | None = None,
    params: list[Schema] | None = None,
    tag: str = "models",
) -> Schema:
    """One operation: bearer auth, its success answer, and the error answers in its flavour's shape."""
    content: Schema = {"application/json": {"schema": ok}}
    if stream is not None:
        content["text/event-stream"] = {"schema": stream}
    op: Schema = {
        "summary": summary,
        "tags": [tag],
        "security": [{"bearer": []}, {"x-api-key": []}] if flavor == "anthropic" else [{"bearer": []}],
        "responses": {str(status): {"description": summary, "content": content}},
    }
    if body:
        op["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": _ref(body)}}}
    if params:
        op["parameters"] = params
    error = _ref("AnthropicError" if flavor == "anthropic" else "Error")
    for code in errors:
        op["responses"][str(code)] = {"description": "error", "content": {"application/json": {"schema": error}}}
    return op


def _also_ok(op: Schema, status: int) -> Schema:
    """`op` with its success answer under a second status too (201 created, 200 repeated)."""
    first = next(iter(op["responses"].values()))
    op["responses"][str(status)] = first
    return op


def _admin(summary: str, ok: Schema, **kw: Any) -> Schema:
    return _op(summary, ok, errors=ADMIN_ERRORS, tag="admin", **kw)


def _public(summary: str, codes: tuple[int, ...]) -> Schema:
    ok = {"application/json": {"schema": _obj({"status": _STR})}}
    responses = {str(c): {"description": summary, "content": ok} for c in codes}
    return {"summary": summary, "tags": ["health"], "responses": responses}


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
        "/v1/models": {"get": _op("List the models this key may use", _list_of(_ref("Model")), errors=(401,))},
        "/v1/models/{model}": {
            "get": _op("Describe one model", _ref("Model"), errors=(401, 403, 404), params=_path("model"))
        },
    }


def _admin_paths() -> dict[str, Schema]:
    done = {"deleted": {"const": True}}
    key_id = _path("key_id")
    return {
        "/admin/keys": {
            "get": _admin("List virtual keys", _list_of(_ref("Key"))),
            "post": _admin("Create a key (returned once)", _ref("CreatedKey"), body="KeyCreate", status=201),
        },
        "/admin/keys/{key_id}/revoke": {
            "post": _admin("Revoke a key", _obj({"id": _STR, "revoked": {"const": True}}), params=key_id)
        },
        "/admin/keys/{key_id}/suspend": {
            "post": _admin(
                "Suspend a key (reversible)",
                _obj({"id": _STR, "suspended": {"const": True}}),
                body="KeySuspend",
                body_required=False,
                params=key_id,
            )
        },
        "/admin/keys/{key_id}/resume": {
            "post": _admin("Lift a suspension", _obj({"id": _STR, "suspended": {"const": False}}), params=key_id)
        },
        "/admin/spend": {
            "get": _admin("Spend by org, team, key, model or day", _ref("Spend"), params=_query(SpendQuery))
        },
        "/admin/roi": {
            "get": _admin(
                "Outcomes, AI cost per completed outcome, labour replaced and ROI",
                _obj(
                    {
                        "object": {"const": "list"},
                        "group": _STR,
                        "data": {"type": "array", "items": _ref("RoiRow")},
                        "total": _ref("RoiRow"),
                        "summary": _OBJ,
                    }
                ),
                params=_query(RoiQuery),
            )
        },
        "/admin/orgs": {
            "get": _admin("List organisations", _list_of(_ref("OrgRecord"))),
            "post": _admin("Create an organisation", _ref("OrgRecord"), body="OrgCreate", status=201),
        },
        "/admin/teams": {
            "get": _admin("List teams", _list_of(_ref("TeamRecord"))),
            "post": _admin("Create a team", _ref("TeamRecord"), body="TeamCreate", status=201),
        },
        "/admin/budgets": {
            "get": _admin("Budgets with spend and reservations", _list_of(_ref("BudgetStatus"))),
            "put": _admin("Set a budget", _ref("BudgetRecord"), body="BudgetSet"),
            "delete": _admin("Remove a budget", _obj(done), params=_query(BudgetRef)),
        },
        "/admin/rate-limits": {
            "get": _admin("List rate limits", _list_of(_ref("RateLimitRecord"))),
            "put": _admin("Set a rate limit", _ref("RateLimitRecord"), body="RateLimitSet"),
            "delete": _admin("Remove a rate limit", _obj(done), params=_query(RateLimitRef)),
        },
        "/admin/guardrails": {
            "get": _admin("List the scoped guardrail policies", _list_of(_ref("GuardrailPolicy"))),
            "put": _admin("Set the guardrail policy of a scope", _ref("GuardrailPolicy"), body="GuardrailSet"),
            "delete": _admin("Remove a scoped guardrail policy", _obj(done), params=_query(GuardrailRef)),
        },
    }


def _agent_paths() -> dict[str, Schema]:
    """Owners, agents and the kill switch (halts: the admin or a governance key; resume: governance only)."""
    owner, agent = _path("owner_id"), _path("agent_id")
    paths: dict[str, Schema] = {
        "/admin/owners": {
            "get": _admin("List owners", _list_of(_ref("OwnerRecord"))),
            "post": _admin("Register an owner (a person)", _ref("OwnerRecord"), body="OwnerCreate", status=201),
        },
        "/admin/agents": {
            "get": _admin("List agents", _list_of(_ref("Agent"))),
            "post": _admin("Register an agent and its key (returned once)", _ref("CreatedAgent"), body="AgentCreate",
                           status=201),
        },
        "/admin/agents/{agent_id}": {"get": _admin("An agent, its keys and its halt", _ref("Agent"), params=agent)},
        "/admin/halts": {
            "get": _admin("The halts in force", _list_of(_ref("HaltRecord"))),
            "post": _admin("Halt an agent, an owner's agents, or all", _ref("HaltRecord"), body="HaltSet", status=201),
        },
        "/admin/halts/resume": {
            "post": _admin("Lift a halt (governance key only)", _obj({"resumed": {"const": True}}), body="HaltSet")
        },
    }  # fmt: skip
    for verb, summary in (("suspend", "Suspend"), ("resume", "Reactivate"), ("remove", "Remove")):
        paths[f"/admin/owners/{{owner_id}}/{verb}"] = {
            "post": _admin(f"{summary} an owner (and so every agent they own)", _ref("OwnerRecord"), params=owner)
        }
        paths[f"/admin/agents/{{agent_id}}/{verb}"] = {
            "post": _admin(f"{summary} an agent", _ref("Agent"), params=agent)
        }
    return paths


def _metrics() -> Schema:
    """GET /metrics: Prometheus text, for the admin key, an admin_read key or the `[metrics] token`."""
    op = _op("Prometheus metrics", _STR, errors=(400, 401, 403, 404), tag="health")
    op["responses"]["200"]["content"] = {"text/plain": {"schema": _STR}}
    return op


def openapi_document(version: str) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Interlock", "version": version, "description": "A self-hosted AI gateway."},
        "components": {
            "schemas": _components(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
        "paths": {
            **_model_paths(),
            **_admin_paths(),
            **_agent_paths(),
            "/healthz": {"get": _public("Liveness", (200,))},
            "/readyz": {"get": _public("Readiness: store open, models loaded", (200, 503))},
            "/metrics": {"get": _metrics()},
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "tags": ["health"],
                    "responses": {"200": {"description": "the document", "content": {"application/json": {}}}},
                }
            },
        },
    }
