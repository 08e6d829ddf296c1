"""Schemathesis against /openapi.json, in-process over ASGI: no server error, nothing off the document.

Every operation gets generated requests (valid and invalid ones), sent with the admin key to the app
with the fake provider. Bounded in examples per operation and derandomized, so `make test` stays
short and a failure reproduces; `make test-fast` skips it (marked slow).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.hooks import HookContext
from schemathesis.python.asgi import HOST, ASGIClient, get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from interlock import __version__
from interlock.api.openapi import openapi_document
from interlock.app import create_app
from interlock.settings import load_settings
from tests.conftest import ADMIN_KEY, FAKE_CONFIG

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
BASE_URL = f"http://{HOST}"
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ASGIClient]:
    """An in-process client of the app with the fake provider, its lifespan started."""
    root: Path = tmp_path_factory.mktemp("schemathesis")
    (root / "interlock.toml").write_text(FAKE_CONFIG)
    env = {"INTERLOCK_HOME": str(root / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY}
    with get_client(create_app(load_settings(root / "interlock.toml", env))) as client:
        yield client
    shutdown_lifespans()  # the app's store, counters and audit log close with the module


def _load(*, modes: list[GenerationMode], phases: list[str]) -> OpenApiSchema:
    """The document /openapi.json serves (tests/api/test_openapi.py checks that), built without an app.

    `schemathesis.pytest.from_fixture` would load it from the app, but its lazy loader fails on pytest 9.2
    (`Function._nodeid`). Security parameters are not generated: every request carries the admin key.
    """
    loaded = schemathesis.openapi.from_dict(openapi_document(__version__))
    loaded.config.generation.update(modes=modes, with_security_parameters=False)
    loaded.config.phases.update(phases=phases)
    loaded.hook(flatmap_body)
    return loaded


# Generated bodies name random models and rarely hold a valid conversation, so most would stop at a 404 or a
# 400 before the gateway. Each body is also tried with its model and prompt replaced by ones the fake
# provider serves; the other generated fields (stream, tools, limits, formats ...) stay as drawn.
HI = [{"role": "user", "content": "hi"}]
SERVED: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "echo", "messages": HI},
    "/v1/completions": {"model": "echo", "prompt": "hi"},
    "/v1/embeddings": {"model": "vectors", "input": "hi"},
    "/v1/responses": {"model": "echo", "input": "hi"},
    "/v1/messages": {"model": "echo", "messages": HI},
    "/v1/messages/count_tokens": {"model": "echo", "messages": HI},
    "/admin/keys": {"models": []},
}


def flatmap_body(context: HookContext, body: Any) -> st.SearchStrategy[Any]:
    served = SERVED.get(context.operation.path) if context.operation else None
    if served is None or not isinstance(body, dict):
        return st.just(body)
    return st.sampled_from([body, {**body, **served}])


# Boundary values and invalid input for every field (the coverage phase) plus random requests of both kinds.
schema = _load(modes=list(GenerationMode), phases=["examples", "coverage", "fuzzing"])
# Random valid requests only: these reach the gateway, the fake provider and its streams.
valid = _load(modes=[GenerationMode.POSITIVE], phases=["fuzzing"])
SETTINGS = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@settings(SETTINGS, max_examples=10)
def test_api_conforms_to_its_document(case: schemathesis.Case, session: ASGIClient) -> None:
    case.call_and_validate(base_url=BASE_URL, session=session, headers=AUTH, checks=CHECKS)


@valid.parametrize()
@settings(SETTINGS, max_examples=25)
def test_valid_requests_are_answered_as_documented(case: schemathesis.Case, session: ASGIClient) -> None:
    case.call_and_validate(base_url=BASE_URL, session=session, headers=AUTH, checks=CHECKS)
