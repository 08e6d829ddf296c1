"""/openapi.json: every route of the app is in it, it is sound OpenAPI 3.1, and 405 answers carry `Allow`."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import Settings

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
STREAMED = ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"]


@pytest.fixture
def doc(client: TestClient) -> dict[str, Any]:
    r = client.get("/openapi.json", headers={"authorization": ""})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    return r.json()  # type: ignore[no-any-return]


def _app_routes(settings: Settings) -> set[tuple[str, str]]:
    """(method, path template) of every API route the app serves; `{model:path}` reads `{model}`.

    The dashboard's pages under `/ui` are HTML for a browser, not API: they are left out of the document."""
    routes = create_app(settings).app.router.routes
    return {
        (method.lower(), re.sub(r"\{(\w+):\w+\}", r"{\1}", r.path))
        for r in routes
        if isinstance(r, Route) and not (r.path == "/ui" or r.path.startswith("/ui/"))
        for method in r.methods or ()
        if method != "HEAD"
    }


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, item in doc["paths"].items() for m, op in item.items() if m in METHODS]


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"unresolvable $ref {ref}"
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_route_of_the_app_is_documented(doc: dict[str, Any], settings: Settings) -> None:
    documented = {(m, p) for p, m, _ in _operations(doc)}
    served = _app_routes(settings)
    assert len(served) >= 29  # the route list is read, not empty
    assert served - documented == set(), "routes without an OpenAPI entry"
    assert documented - served == set(), "documented operations the app does not serve"


def test_document_is_structurally_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1.") and doc["info"]["title"] and doc["info"]["version"]
    for ref in _refs(doc):
        _resolve(doc, ref)
    schemes = doc["components"]["securitySchemes"]
    op_ids: list[str] = []
    for path, method, op in _operations(doc):
        assert path.startswith("/")
        assert op["responses"], f"{method} {path} documents no response"
        for status, response in op["responses"].items():
            assert re.fullmatch(r"[1-5]\d\d", status), f"{method} {path}: bad status key {status!r}"
            assert response["description"]
        for requirement in op.get("security", []):
            assert set(requirement) <= set(schemes)
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), f"{method} {path}: path parameters"
        for param in op.get("parameters", []):
            assert param["in"] in ("path", "query", "header", "cookie") and "schema" in param
            assert param["in"] != "path" or param["required"] is True
        if "requestBody" in op:
            assert method in ("post", "put", "patch")
            assert "application/json" in op["requestBody"]["content"]
        op_ids.append(f"{method} {path}")
    assert len(op_ids) == len(set(op_ids))


def test_status_codes_and_parameters(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    for path in ("/admin/keys", "/admin/orgs", "/admin/teams"):
        assert "201" in paths[path]["post"]["responses"] and "200" not in paths[path]["post"]["responses"]
    assert "200" in paths["/admin/budgets"]["put"]["responses"]
    assert {"503", "200"} <= set(paths["/readyz"]["get"]["responses"])
    budget_ref = {p["name"]: p for p in paths["/admin/budgets"]["delete"]["parameters"]}
    assert {n for n, p in budget_ref.items() if p["in"] == "query" and p["required"]} == {"scope", "scope_id", "period"}
    spend = {p["name"]: p for p in paths["/admin/spend"]["get"]["parameters"]}
    assert spend["group"]["schema"]["enum"] == ["org", "team", "key", "model", "endpoint", "day"]
    assert spend["endpoint"]["in"] == "query" and spend["endpoint"]["required"] is False
    assert spend["since"] == {"name": "since", "in": "query", "required": False, "schema": {"type": "number"}}
    assert paths["/admin/keys/{key_id}/suspend"]["post"]["requestBody"]["required"] is False


def test_streaming_endpoints_document_the_event_stream(doc: dict[str, Any]) -> None:
    for path in STREAMED:
        content = doc["paths"][path]["post"]["responses"]["200"]["content"]
        assert set(content) == {"application/json", "text/event-stream"}, path
        assert content["text/event-stream"]["schema"]["required"] == ["data"]
    assert "text/event-stream" not in doc["paths"]["/v1/embeddings"]["post"]["responses"]["200"]["content"]


def test_errors_are_documented_in_each_flavours_shape(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["Error"]["required"] == ["error"]
    assert schemas["AnthropicError"]["properties"]["type"] == {"const": "error"}
    for path, method, op in _operations(doc):
        errors = {s: r for s, r in op["responses"].items() if s >= "400"}
        if path in ("/healthz", "/readyz", "/openapi.json"):
            continue
        assert {"400", "401"} <= set(errors) or path.startswith("/v1/models") or path.startswith("/v1/responses/")
        want = "AnthropicError" if path.startswith("/v1/messages") else "Error"
        for status, response in errors.items():
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{want}", f"{method} {path} {status}"


def test_error_bodies_match_their_documented_flavour(client: TestClient) -> None:
    anthropic = client.post("/v1/messages", json={"model": "echo"})
    assert anthropic.status_code == 400 and anthropic.json()["type"] == "error"
    assert set(anthropic.json()["error"]) == {"type", "message"}
    openai = client.post("/v1/chat/completions", json={"model": "echo"})
    assert openai.status_code == 400 and set(openai.json()["error"]) >= {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/admin/keys", "GET, HEAD, POST"),
        ("POST", "/admin/budgets", "DELETE, GET, HEAD, PUT"),
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/responses/resp_1", "DELETE, GET, HEAD"),
        ("DELETE", "/healthz", "GET, HEAD"),
    ],
)
def test_405_carries_allow(client: TestClient, method: str, path: str, allow: str) -> None:
    r = client.request(method, path)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow
    assert r.json()["error"]["code"] == "method_not_allowed"
