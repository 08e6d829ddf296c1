"""Fault injection: what the client sees and what the ledger records when the upstream misbehaves.

The stub upstream picks its fault from the upstream model name (see interlock.testing.stub_upstream).
"""

from __future__ import annotations

import sqlite3

import httpx
import orjson
import pytest

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server

pytestmark = pytest.mark.subprocess

FAULTS = ["500", "reset", "hang", "cut", "slow", "badjson", "badsse", "nousage", "reasoning", "burst"]


def _config(stub: str) -> str:
    aliases = "\n".join(
        f'[models.f-{f}]\nprovider = "openai_compatible"\nbase_url = "{stub}/v1"\nmodel = "stub-{f}"\n'
        "price_input_per_mtok = 1\nprice_output_per_mtok = 1\n"
        for f in FAULTS
    )
    return f"""
[server]
first_token_timeout = 1.0
total_timeout = 10.0

[store]
flush_interval_ms = 5

[routing]
retries = 1
backoff_ms = 1
breaker_failures = 3
breaker_cooldown_s = 60

{aliases}

[models.ok]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub"
price_input_per_mtok = 1
price_output_per_mtok = 1

[models.ha]
price_input_per_mtok = 1
price_output_per_mtok = 1
[[models.ha.deployments]]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub-500"
priority = 0
[[models.ha.deployments]]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub"
priority = 1

[models.pricey]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub"
price_input_per_mtok = 1
price_output_per_mtok = 1000000

[models.primary]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub-reset"
fallbacks = ["ok"]
"""


@pytest.fixture(scope="module")
def server(stub_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Server:
    from tests.e2e.conftest import start_server

    server = start_server(tmp_path_factory.mktemp("faults"), _config(stub_upstream))
    yield server  # type: ignore[misc]
    server.proc.terminate()
    server.proc.wait(15)


def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)


def _chat(server: Server, alias: str, stream: bool = False) -> httpx.Response:
    body = {"model": alias, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    with _client(server) as c:
        r = c.post("/v1/chat/completions", json=body)
        r.read()
        return r


def _row(server: Server, request_id: str) -> tuple[object, ...]:
    db = sqlite3.connect(server.home / "interlock.db")
    for _ in range(200):
        row = db.execute(
            "SELECT status, attempts, deployment, completion_tokens, error FROM usage WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        if row:
            return row  # type: ignore[no-any-return]
        httpx.get(server.url + "/healthz")  # give the writer a moment without sleeping blindly
    raise AssertionError(f"no ledger row for {request_id}")


def _events(r: httpx.Response) -> list[bytes]:
    return [line[6:].encode() for line in r.text.split("\n") if line.startswith("data: ")]


def test_5xx_is_retried_then_502(server: Server) -> None:
    r = _chat(server, "f-500")
    assert r.status_code == 502 and "500" in r.json()["error"]["message"]
    status, attempts, *_ = _row(server, r.headers["x-request-id"])
    assert (status, attempts) == (502, 2)


def test_reset_is_502(server: Server) -> None:
    r = _chat(server, "f-reset", stream=True)
    assert r.status_code == 502 and r.json()["error"]["code"] in ("upstream_connection_error", "upstream_truncated")
    assert _row(server, r.headers["x-request-id"])[0] == 502


def test_hang_before_first_byte_is_504(server: Server) -> None:
    r = _chat(server, "f-hang")
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
    r = _chat(server, "f-hang", stream=True)
    assert r.status_code == 504
    assert _row(server, r.headers["x-request-id"])[0] == 504


def test_cut_mid_stream_ends_with_error_event_and_is_not_retried(server: Server) -> None:
    r = _chat(server, "f-cut", stream=True)
    assert r.status_code == 200
    events = _events(r)
    assert b"[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_truncated"
    text = "".join(c["delta"].get("content") or "" for e in events[:-1] for c in orjson.loads(e).get("choices", []))
    assert text.startswith("Hello")  # the part that arrived was delivered (the guardrails' hold-back released it)
    status, attempts, _, completion, error = _row(server, r.headers["x-request-id"])
    assert (status, attempts) == (502, 1) and completion > 0 and "DONE" in str(error)


def test_slow_stream_completes(server: Server) -> None:
    r = _chat(server, "f-slow", stream=True)
    events = _events(r)
    assert r.status_code == 200 and events[-1] == b"[DONE]"
    assert _row(server, r.headers["x-request-id"])[0] == 200


def test_a_stream_that_arrives_in_one_read_is_complete_and_settled(server: Server) -> None:
    # The provider marks that batch last, so [DONE] leaves in the same write, before the ledger row.
    body = {
        "model": "f-burst",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with _client(server) as c:
        r = c.post("/v1/chat/completions", json=body)
    events = _events(r)
    assert r.status_code == 200 and events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert "".join(c["delta"].get("content") or "" for e in chunks for c in e["choices"]) == (
        "Hello from the stub upstream."
    )
    assert chunks[-1]["usage"]["completion_tokens"] == 6 and all(e["model"] == "f-burst" for e in chunks)
    status, attempts, _, completion, error = _row(server, r.headers["x-request-id"])
    assert (status, attempts, completion, error) == (200, 1, 6, None)


def test_malformed_json(server: Server) -> None:
    r = _chat(server, "f-badjson")
    assert r.status_code == 502 and r.json()["error"]["code"] == "bad_upstream_response"
    r = _chat(server, "f-badjson", stream=True)
    events = _events(r)
    assert r.status_code == 200 and b"[DONE]" not in events
    assert "not JSON" in orjson.loads(events[-1])["error"]["message"]


def test_bad_sse_frame(server: Server) -> None:
    r = _chat(server, "f-badsse", stream=True)
    events = _events(r)
    assert b"[DONE]" not in events and orjson.loads(events[-1])["error"]["code"] == "upstream_truncated"
    assert _row(server, r.headers["x-request-id"])[0] == 502


def test_failover_to_the_next_deployment_then_breaker_skips_the_dead_one(server: Server) -> None:
    attempts = []
    for _ in range(5):
        r = _chat(server, "ha")
        assert r.status_code == 200 and r.headers["x-interlock-deployment"] == "ha#1"
        attempts.append(int(r.headers["x-interlock-attempts"]))
    # The first 3 requests pay a failed attempt each; then ha#0's breaker is open and skipped.
    assert attempts == [2, 2, 2, 1, 1]
    with _client(server) as c:
        body = {"model": "ha", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with c.stream("POST", "/v1/chat/completions", json=body) as s:
            assert s.headers["x-interlock-deployment"] == "ha#1"


def test_fallback_alias(server: Server) -> None:
    r = _chat(server, "primary")
    assert r.status_code == 200 and r.headers["x-interlock-model"] == "ok"


def test_single_deployment_breaker_fails_fast_with_503(server: Server) -> None:
    codes = [_chat(server, "f-500").status_code for _ in range(3)]
    r = _chat(server, "f-500")
    assert 503 in [*codes, r.status_code]
    final = _chat(server, "f-500")
    assert final.status_code == 503 and final.json()["error"]["code"] == "circuit_open"
    assert int(final.headers["retry-after"]) > 0
    assert _row(server, final.headers["x-request-id"])[0] == 503


def test_client_disconnect_mid_stream_is_recorded_as_499(server: Server) -> None:
    body = {"model": "f-slow", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with _client(server) as c, c.stream("POST", "/v1/chat/completions", json=body) as r:
        request_id = r.headers["x-request-id"]
        next(r.iter_lines())  # the first event arrives, then the client goes away
    status, _, _, _, error = _row(server, request_id)
    assert status == 499 and error == "client disconnected"


def test_budget_backstop_cuts_an_upstream_that_ignores_max_tokens(server: Server) -> None:
    """The stub ignores max_tokens; once its output costs more than the request's grant, the stream is cut."""
    with _client(server) as c:
        key = c.post("/admin/keys", json={"name": "capped"}).json()
        budget = {"scope": "key", "scope_id": key["id"], "period": "day", "limit_usd": "5"}
        assert c.put("/admin/budgets", json=budget).status_code == 200
        body = {"model": "pricey", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 3}
        r = c.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key['key']}"})
    events = _events(r)
    assert r.status_code == 200 and b"[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "budget_exceeded"
    text = "".join(c["delta"].get("content") or "" for e in events[:-1] for c in orjson.loads(e).get("choices", []))
    full = "Hello from the stub upstream."
    assert text and full.startswith(text) and text != full  # what the grant paid for arrived, not more
    status, _, _, completion, _ = _row(server, r.headers["x-request-id"])
    assert status == 429 and completion > 0


def test_reasoning_is_relayed_and_counted_when_the_upstream_reports_no_usage(server: Server) -> None:
    plain = _chat(server, "f-nousage", stream=True)
    r = _chat(server, "f-reasoning", stream=True)
    deltas = [c["delta"] for e in _events(r)[:-1] for c in orjson.loads(e).get("choices", [])]
    thoughts = "".join(d.get("reasoning_content") or "" for d in deltas)
    assert thoughts.startswith("The user") and "".join(d.get("content") or "" for d in deltas).startswith("Hello")
    with_reasoning, without = _row(server, r.headers["x-request-id"]), _row(server, plain.headers["x-request-id"])
    assert with_reasoning[0] == without[0] == 200
    assert with_reasoning[3] > without[3] > 0  # the reasoning text is output the model produced: it is billed

    answer = _chat(server, "f-reasoning")
    assert answer.json()["choices"][0]["message"]["reasoning_content"].startswith("The user")
    assert _row(server, answer.headers["x-request-id"])[3] == with_reasoning[3]
