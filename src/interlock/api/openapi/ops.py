"""The pieces every operation is built from: schema helpers, error answers, parameters."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

Schema = dict[str, Any]

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
