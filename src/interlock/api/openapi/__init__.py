"""The OpenAPI 3.1 document, built from the same pydantic models that validate requests.

Request bodies and query parameters come from the models the handlers validate with; responses from
the models (or records) the handlers render, in serialization mode. Every route of the app has an
entry here (`tests/api/test_openapi.py` fails otherwise), and `tests/api/test_schemathesis.py` holds
the app to what this document says.
"""

from __future__ import annotations

from typing import Any

from interlock.api.openapi.admin_paths import _admin_paths, _variant_paths
from interlock.api.openapi.agent_paths import _agent_paths
from interlock.api.openapi.components import _components
from interlock.api.openapi.model_paths import _metrics, _model_paths
from interlock.api.openapi.ops import _public


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
            **_variant_paths(),
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
