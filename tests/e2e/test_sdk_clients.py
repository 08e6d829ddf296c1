"""Real socket: `interlock serve` in a subprocess, the official SDKs as clients, a stub upstream."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import anthropic
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

[models.remote-nousage]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub-nousage"
price_input_per_mtok = 1
price_output_per_mtok = 1

[models.remote-cut]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub-cut"

[models.claude]
provider = "anthropic"
base_url = "{stub}"
model = "stub"
price_input_per_mtok = 3
price_output_per_mtok = 15
"""


@pytest.fixture
def server(serve: Callable[[str | None], Server], stub_upstream: str) -> Server:
    return serve(_config(stub_upstream))


def _rows(server: Server) -> list[tuple[object, ...]]:
    db = sqlite3.connect(server.home / "interlock.db")
    return db.execute(
        "SELECT alias, status, prompt_tokens, completion_tokens, cost_micros, usage_source, stream "
        "FROM usage ORDER BY ts"
    ).fetchall()


def test_openai_sdk_plain_and_streamed(server: Server) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    r = client.chat.completions.create(model="remote", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from the stub upstream."
    assert r.usage is not None and r.usage.total_tokens == 18
    stream = client.chat.completions.create(
        model="remote",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the stub upstream."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    models = {m.id for m in client.models.list()}
    assert models == {"remote", "remote-nousage", "remote-cut", "claude"}


def test_openai_sdk_sees_errors(server: Server) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0).models.list()
    with pytest.raises(openai.APIError, match=r"before \[DONE\]|ended"):
        list(
            client.chat.completions.create(
                model="remote-cut", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )


def test_anthropic_sdk_on_messages(server: Server) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key=ADMIN_KEY, max_retries=0)
    msg = client.messages.create(model="claude", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].type == "text" and msg.content[0].text == "Hello from the stub upstream."
    assert msg.usage.input_tokens == 12 and msg.usage.output_tokens == 6
    with client.messages.stream(model="remote", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Hello from the stub upstream." and final.stop_reason == "end_turn"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "hi"}])


def test_ledger_records_every_request_once_with_usage_source(server: Server) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    client.chat.completions.create(model="remote", messages=[{"role": "user", "content": "hi"}])
    r = client.chat.completions.create(
        model="remote-nousage", messages=[{"role": "user", "content": "count me please"}]
    )
    assert r.usage is not None and r.usage.prompt_tokens > 0  # counted by the gateway
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="remote-cut", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    server.proc.terminate()  # graceful: flushes the ledger
    server.proc.wait(15)
    rows = _rows(server)
    assert [(r[0], r[1]) for r in rows] == [("remote", 200), ("remote-nousage", 200), ("remote-cut", 502)]
    assert rows[0][2:6] == (12, 6, 90, "provider")  # 12 x $2.5/M + 6 x $10/M = 30 + 60 micro-dollars
    assert rows[1][5].startswith(("bound:utf8-bytes", "tokenizer"))
    assert rows[2][6] == 1


def test_openai_sdk_streams_from_an_anthropic_upstream(server: Server) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    stream = client.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the stub upstream."
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 12
