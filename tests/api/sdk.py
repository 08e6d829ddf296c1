"""The official `openai` SDK against the in-process app: its requests go through a `TestClient`.

The SDK uses `httpx2`, which a starlette `TestClient` (an `httpx` client) cannot stand in for; a mock
transport forwards each request to the test client, whose lifespan runs the app's services.
"""

from __future__ import annotations

import httpx2
import openai
from starlette.testclient import TestClient

from tests.conftest import ADMIN_KEY


def in_process_sdk(client: TestClient, api_key: str = ADMIN_KEY) -> openai.OpenAI:
    """An `openai.OpenAI` whose every request is served by `client`'s app (no retries)."""

    def forward(request: httpx2.Request) -> httpx2.Response:
        r = client.request(request.method, str(request.url), headers=dict(request.headers), content=request.read())
        headers = [(k, v) for k, v in r.headers.multi_items() if k.lower() != "content-encoding"]
        return httpx2.Response(r.status_code, headers=headers, content=r.content)

    transport = httpx2.MockTransport(forward)
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key=api_key, max_retries=0, http_client=httpx2.Client(transport=transport)
    )
