"""Traces with the in-memory exporter: one SERVER span per request, a child per attempt, W3C context both ways."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.observability.semconv import GENAI_SEMCONV_VERSION, SCHEMA_URL
from interlock.observability.traced_provider import TracedProvider
from interlock.settings import ConfigError, load_settings
from tests.conftest import FAKE_CONFIG, free_port
from tests.observability.conftest import CHAT, AppFactory, recording_upstream

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
TRACING = "[tracing]\nenabled = true\n[routing]\nbackoff_ms = 0\n"


def traced(client: TestClient) -> InMemorySpanExporter:
    """Collect the app's finished spans in memory."""
    exporter = InMemorySpanExporter()
    tracing = client.app.state.interlock.observability.tracing  # type: ignore[attr-defined]
    tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def _one(spans: list[ReadableSpan], kind: SpanKind) -> ReadableSpan:
    (found,) = [s for s in spans if s.kind == kind]
    return found


def test_a_request_is_a_server_span_under_the_callers_traceparent(make_app: AppFactory) -> None:
    client = make_app(TRACING)
    spans = traced(client)
    r = client.post("/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT})
    assert r.status_code == 200

    finished = list(spans.get_finished_spans())
    server, call = _one(finished, SpanKind.SERVER), _one(finished, SpanKind.CLIENT)
    assert server.name == "chat echo" and call.name == "chat echo"
    assert server.context is not None and call.context is not None and call.parent is not None
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None and format(server.parent.span_id, "016x") == CALLER_SPAN
    assert call.context.trace_id == server.context.trace_id and call.parent.span_id == server.context.span_id
    a = server.attributes or {}
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "echo"
    assert a["gen_ai.response.model"] == "echo" and a["gen_ai.provider.name"] == "fake"
    usage = r.json()["usage"]
    assert a["gen_ai.usage.input_tokens"] == usage["prompt_tokens"] > 0
    assert a["gen_ai.usage.output_tokens"] == usage["completion_tokens"] > 0
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["interlock.request_id"] == r.headers["x-request-id"] and a["http.response.status_code"] == 200
    c = call.attributes or {}
    assert c["gen_ai.usage.output_tokens"] == usage["completion_tokens"] and c["interlock.deployment"] == "echo"
    assert call.instrumentation_scope is not None and call.instrumentation_scope.schema_url == SCHEMA_URL
    assert GENAI_SEMCONV_VERSION in SCHEMA_URL


def test_a_stream_span_ends_with_the_stream(make_app: AppFactory) -> None:
    client = make_app(TRACING)
    spans = traced(client)
    assert client.post("/v1/chat/completions", json={**CHAT, "stream": True}).status_code == 200
    finished = list(spans.get_finished_spans())
    server, call = _one(finished, SpanKind.SERVER), _one(finished, SpanKind.CLIENT)
    assert server.parent is None  # no traceparent: a new trace
    assert call.parent is not None and server.context is not None and call.parent.span_id == server.context.span_id
    assert (call.attributes or {})["gen_ai.response.finish_reasons"] == ("stop",)
    assert (server.attributes or {})["gen_ai.response.finish_reasons"] == ("stop",)
    assert call.end_time is not None and server.end_time is not None and call.end_time <= server.end_time


def test_each_failover_attempt_is_a_child_span(make_app: AppFactory) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    client = make_app(
        TRACING + f"[models.flaky]\nprovider = 'openai_compatible'\nbase_url = '{dead}'\nfallbacks = ['echo']\n"
    )
    spans = traced(client)
    r = client.post("/v1/chat/completions", json={**CHAT, "model": "flaky"})
    assert r.status_code == 200 and r.headers["x-interlock-attempts"] == "2"
    finished = list(spans.get_finished_spans())
    server = _one(finished, SpanKind.SERVER)
    calls = sorted((s for s in finished if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert server.context is not None
    assert [c.parent.span_id for c in calls if c.parent] == [server.context.span_id] * 2
    failed, answered = calls
    assert failed.status.status_code == StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "upstream_unreachable"
    assert (answered.attributes or {})["interlock.deployment"] == "echo"
    assert (server.attributes or {})["interlock.attempts"] == 2 and server.name == "chat flaky"


def test_the_trace_context_goes_upstream(make_app: AppFactory) -> None:
    with recording_upstream() as (base_url, seen):
        client = make_app(TRACING + f"[models.remote]\nprovider = 'openai_compatible'\nbase_url = '{base_url}'\n")
        spans = traced(client)
        r = client.post("/v1/chat/completions", json={**CHAT, "model": "remote"}, headers={"traceparent": TRACEPARENT})
        assert r.status_code == 200
    call = _one(list(spans.get_finished_spans()), SpanKind.CLIENT)
    assert call.context is not None and len(seen) == 1
    version, trace_id, parent_id, flags = seen[0]["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert parent_id == format(call.context.span_id, "016x")  # the attempt's span, not the caller's
    assert (call.attributes or {})["gen_ai.usage.input_tokens"] == 3


def test_tracing_is_off_by_default(make_app: AppFactory) -> None:
    with recording_upstream() as (base_url, seen):
        client = make_app(f"[models.remote]\nprovider = 'openai_compatible'\nbase_url = '{base_url}'\n")
        r = client.post("/v1/chat/completions", json={**CHAT, "model": "remote"}, headers={"traceparent": TRACEPARENT})
        assert r.status_code == 200
    assert "traceparent" not in seen[0]
    state = client.app.state.interlock  # type: ignore[attr-defined]
    assert state.observability.tracing is None
    assert not any(isinstance(d.provider, TracedProvider) for r in state.gateway.routes.values() for d in r.deployments)


def test_an_otlp_endpoint_without_the_exporter_is_a_clear_config_error(tmp_path: Path) -> None:
    try:
        importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        pytest.skip("the OTLP exporter is installed here")
    except ImportError:
        pass
    config = tmp_path / "c.toml"
    config.write_text(FAKE_CONFIG + "[tracing]\nenabled = true\notlp_endpoint = 'http://127.0.0.1:4318/v1/traces'\n")
    with pytest.raises(ConfigError, match="pip install opentelemetry-exporter-otlp-proto-http"):
        create_app(load_settings(config, {"INTERLOCK_HOME": str(tmp_path / "home")}))
