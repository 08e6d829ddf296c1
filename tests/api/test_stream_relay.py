"""An OpenAI upstream's stream relayed to a chat client as it came (`streams.relay_batches`), and when it is not.

The gateway relays only when no `on_batch` hook has to see the chunks: each one takes relayed chunks (the
budget backstop) or says, with `watches_stream`, that it has nothing to do on the stream. The agents'
hooks (tool-call policy, run halts) watch only agents' streams, guardrails only scanned ones, capture only
captured ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.plugins.hooks import Hook, HookContext
from interlock.settings import load_settings
from interlock.store.records import UsageRecord
from interlock.types import ChatChunk
from tests.conftest import ADMIN_KEY

CONFIG = """
[store]
flush_interval_ms = 5

[guardrails]
enabled = false

{models}
"""
MODEL = """
[models.{alias}]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "{model}"
price_input_per_mtok = {input}
price_output_per_mtok = {output}
"""
ALIASES = {"plain": "stub", "nousage": "stub-nousage", "badjson": "stub-badjson", "cut": "stub-cut"}


class Watcher(Hook[HookContext]):
    """A plugin's `on_batch` hook without `watches_stream`: it is taken to watch every stream."""

    name = "watcher"

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def on_batch(self, ctx: HookContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        self.seen += [c.choices[0].delta.content or "" for c in batch if c.choices]
        return batch


def _app(tmp_path: Path, stub: str, hooks: list[Hook[Any]], extra: str = "") -> TestClient:
    models = (
        extra
        + "".join(MODEL.format(alias=a, model=m, stub=stub, input=2.5, output=10) for a, m in ALIASES.items())
        + MODEL.format(alias="pricey", model="stub", stub=stub, input=1, output=1_000_000)
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(models=models))
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    return TestClient(create_app(settings, hooks=hooks), headers={"authorization": f"Bearer {ADMIN_KEY}"})


@pytest.fixture
def app(tmp_path: Path, stub_upstream: str) -> Iterator[TestClient]:
    with _app(tmp_path, stub_upstream, []) as c:
        yield c


def _stream(
    app: TestClient, alias: str, headers: dict[str, str] | None = None, **extra: Any
) -> tuple[Any, list[bytes]]:
    body = {"model": alias, "messages": [{"role": "user", "content": "hi"}], "stream": True, **extra}
    r = app.post("/v1/chat/completions", json=body, headers=headers)
    return r, [line[6:].encode() for line in r.text.split("\n") if line.startswith("data: ")]


def _rows(app: TestClient) -> list[UsageRecord]:
    state = app.app.state.interlock  # type: ignore[attr-defined]
    app.portal.call(state.store.flush)  # type: ignore[union-attr]
    return app.portal.call(state.store.usage_rows)  # type: ignore[union-attr,no-any-return]


def _text(events: list[bytes]) -> str:
    return "".join(c["delta"].get("content") or "" for e in events for c in orjson.loads(e).get("choices", []))


def test_a_relayed_stream_is_the_upstreams_chunks_with_the_alias(app: TestClient) -> None:
    r, events = _stream(app, "plain", stream_options={"include_usage": True})
    assert r.status_code == 200 and events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all(c["model"] == "plain" for c in chunks)
    # as the stub wrote them: no field the chunk model would have filled in with null
    assert all("usage" not in c and "logprobs" not in c["choices"][0] for c in chunks[:-1])
    assert _text(events[:-1]) == "Hello from the stub upstream."
    assert chunks[-1]["usage"] == {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
    (row,) = [row for row in _rows(app) if row.request_id == r.headers["x-request-id"]]
    assert (row.status, row.stream, row.usage_source, row.prompt_tokens, row.completion_tokens) == (
        200, True, "provider", 12, 6
    )  # fmt: skip


def test_a_relayed_stream_without_include_usage_has_no_usage_chunk(app: TestClient) -> None:
    r, events = _stream(app, "plain")
    assert r.status_code == 200 and events[-1] == b"[DONE]"
    assert all(orjson.loads(e)["choices"] for e in events[:-1])


def test_a_relayed_stream_without_upstream_usage_ends_with_the_gateways_count(app: TestClient) -> None:
    r, events = _stream(app, "nousage", stream_options={"include_usage": True})
    usage = orjson.loads(events[-2])["usage"]
    (row,) = [row for row in _rows(app) if row.request_id == r.headers["x-request-id"]]
    assert row.usage_source != "provider" and row.completion_tokens > 0
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (row.prompt_tokens, row.completion_tokens)


@pytest.mark.parametrize(("alias", "code"), [("badjson", "bad_upstream_response"), ("cut", "upstream_truncated")])
def test_a_relayed_stream_that_fails_upstream_ends_with_an_error_event(app: TestClient, alias: str, code: str) -> None:
    r, events = _stream(app, alias)
    assert r.status_code == 200 and b"[DONE]" not in events
    assert _text(events[:-1]).startswith("Hello")  # what came before the failure reached the client
    assert orjson.loads(events[-1])["error"]["code"] == code
    (row,) = [row for row in _rows(app) if row.request_id == r.headers["x-request-id"]]
    assert row.status == 502


def test_the_budget_backstop_cuts_a_relayed_stream(app: TestClient) -> None:
    key = app.post("/admin/keys", json={"name": "capped"}).json()
    budget = {"scope": "key", "scope_id": key["id"], "period": "day", "limit_usd": "5"}
    assert app.put("/admin/budgets", json=budget).status_code == 200
    r, events = _stream(app, "pricey", max_tokens=3, headers={"authorization": f"Bearer {key['key']}"})
    assert r.status_code == 200 and b"[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "budget_exceeded"
    text = _text(events[:-1])
    assert text and "Hello from the stub upstream.".startswith(text) and text != "Hello from the stub upstream."
    (row,) = [row for row in _rows(app) if row.request_id == r.headers["x-request-id"]]
    assert row.status == 429 and row.completion_tokens > 0


def test_a_hook_that_watches_streams_gets_chat_chunks(tmp_path: Path, stub_upstream: str) -> None:
    watcher = Watcher()
    with _app(tmp_path, stub_upstream, [watcher]) as app:
        r, events = _stream(app, "plain")
    assert r.status_code == 200 and events[-1] == b"[DONE]"
    assert "".join(watcher.seen) == _text(events[:-1]) == "Hello from the stub upstream."
    assert all("logprobs" in orjson.loads(e)["choices"][0] for e in events[:-1])  # rendered from ChatChunks


def test_an_agents_stream_is_not_relayed_and_a_plain_keys_is(tmp_path: Path, stub_upstream: str) -> None:
    """The agents' hooks watch only agents' streams (their tool calls are held and judged, halts end them)."""
    with _app(tmp_path, stub_upstream, []) as app:
        owner = app.post("/admin/owners", json={"name": "Ann Owner", "email": "ann@example.com"})
        assert owner.status_code == 201, owner.text
        agent = app.post("/admin/agents", json={"name": "bot", "owner_id": owner.json()["id"], "description": "d"})
        assert agent.status_code == 201, agent.text
        r, events = _stream(app, "plain", headers={"authorization": f"Bearer {agent.json()['key']}"})
        plain, relayed = _stream(app, "plain")
    assert r.status_code == 200 and _text(events[:-1]) == "Hello from the stub upstream."
    assert all("logprobs" in orjson.loads(e)["choices"][0] for e in events[:-1])  # rendered from ChatChunks
    assert plain.status_code == 200 and _text(relayed[:-1]) == "Hello from the stub upstream."
    assert not any("logprobs" in orjson.loads(e)["choices"][0] for e in relayed[:-1] if orjson.loads(e)["choices"])


def test_a_traced_stream_is_still_relayed_and_its_span_has_the_usage(tmp_path: Path, stub_upstream: str) -> None:
    """Tracing wraps each provider (`TracedProvider`); the wrapper relays too, under the attempt's span."""
    with _app(tmp_path, stub_upstream, [], extra="[tracing]\nenabled = true\n") as app:
        exporter = InMemorySpanExporter()
        app.app.state.interlock.observability.tracing.provider.add_span_processor(  # type: ignore[attr-defined]
            SimpleSpanProcessor(exporter)
        )
        r, events = _stream(app, "plain", stream_options={"include_usage": True})
    assert r.status_code == 200 and _text(events[:-1]) == "Hello from the stub upstream."
    assert not any("logprobs" in c for e in events[:-1] for c in orjson.loads(e)["choices"])  # relayed as sent
    (call,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    a = call.attributes or {}
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 6)
    assert a["gen_ai.response.finish_reasons"] == ("stop",) and call.status.status_code != StatusCode.ERROR
