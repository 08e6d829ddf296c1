"""Real socket: the official `openai` SDK's `client.completions.create` against `interlock serve` and a stub."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import openai
import pytest

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server

pytestmark = pytest.mark.subprocess


def _config(stub: str) -> str:
    return f"""
[store]
flush_interval_ms = 10

[models.remote]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub"
price_input_per_mtok = 2.5
price_output_per_mtok = 10
"""


@pytest.fixture
def server(serve: Callable[[str | None], Server], stub_upstream: str) -> Server:
    return serve(_config(stub_upstream))


def test_completions_plain_streamed_and_refused(server: Server) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    r = client.completions.create(model="remote", prompt="Say hello", max_tokens=20)
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert r.choices[0].text == "Hello from the stub upstream." and r.choices[0].finish_reason == "stop"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (12, 6)

    stream = client.completions.create(
        model="remote", prompt="Say hello", max_tokens=20, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello from the stub upstream."
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 18

    with pytest.raises(openai.BadRequestError, match="suffix"):
        client.completions.create(model="remote", prompt="x", suffix="y")
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x")

    server.proc.terminate()  # graceful: flushes the ledger
    server.proc.wait(15)
    db = sqlite3.connect(server.home / "interlock.db")
    rows = db.execute("SELECT endpoint, status, stream, prompt_tokens, completion_tokens FROM usage ORDER BY ts")
    assert rows.fetchall() == [
        ("completions", 200, 0, 12, 6),
        ("completions", 200, 1, 12, 6),
        ("completions", 400, 0, 0, 0),
        ("completions", 404, 0, 0, 0),
    ]
