"""/v1/messages validates before it translates; stop sequences, streamed usage; /v1/messages/count_tokens."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import load_settings
from interlock.store.records import UsageRecord
from tests.conftest import ADMIN_KEY

USER = [{"role": "user", "content": "hello"}]


def _body(**kw: Any) -> dict[str, Any]:
    return {"model": "echo", "max_tokens": 50, "messages": USER, **kw}


def _team_key(client: TestClient) -> tuple[str, dict[str, str]]:
    """A key on a team with a budget, so that a reservation left behind would show."""
    org = client.post("/admin/orgs", json={"name": "acme"}).json()["id"]
    team = client.post("/admin/teams", json={"org_id": org, "name": "t"}).json()["id"]
    key = client.post("/admin/keys", json={"name": "svc", "team_id": team}).json()["key"]
    r = client.put("/admin/budgets", json={"scope": "team", "scope_id": team, "period": "day", "limit_usd": "1"})
    assert r.status_code == 200, r.text
    return team, {"authorization": f"Bearer {key}"}


# The five inputs that used to answer 500, and the field each 400 must name.
INVALID = [
    pytest.param(_body(stop_sequences=["a", "b", "c", "d", "e"]), "stop_sequences", id="five-stop-sequences"),
    pytest.param(_body(messages=[{"role": "user", "content": []}]), "messages.0.content", id="empty-content"),
    pytest.param(
        _body(messages=[{"role": "user", "content": [{"type": "tool_result", "content": "42"}]}]),
        "messages.0.content.0.tool_use_id",
        id="tool-result-without-id",
    ),
    pytest.param(_body(tools=[{"name": "", "input_schema": {"type": "object"}}]), "tools.0.name", id="empty-tool-name"),
    pytest.param(
        _body(tools=[{"name": "get time", "input_schema": {"type": "object"}}]), "tools.0.name", id="tool-name-space"
    ),
    pytest.param(
        _body(tools=[{"name": "f", "input_schema": {"type": "object"}}], tool_choice={"type": "tool"}),
        "tool_choice.name",
        id="tool-choice-without-name",
    ),
]


@pytest.mark.parametrize(("body", "field"), INVALID)
def test_invalid_input_is_a_400_naming_the_field(
    client: TestClient, ledger: Callable[[], list[UsageRecord]], body: dict[str, Any], field: str
) -> None:
    _, auth = _team_key(client)
    for stream in (False, True):
        r = client.post("/v1/messages", json={**body, "stream": stream}, headers=auth)
        assert r.status_code == 400, r.text
        error = r.json()
        assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
        assert f"'{field}'" in error["error"]["message"]
        assert r.headers["x-interlock-error-code"]
        assert r.headers["x-request-id"].startswith("req_")
    rows = ledger()
    assert [(row.endpoint, row.status) for row in rows] == [("messages", 400)] * 2
    budgets = client.get("/admin/budgets").json()["data"]
    assert budgets[0]["reserved_micros"] == 0 and budgets[0]["spent_micros"] == 0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"top_k": 0}, "top_k"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1000}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 2048}, "thinking.budget_tokens"),
        ({"thinking": {"type": "adaptive", "budget_tokens": 2048}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type"),
        ({"mcp_servers": [{"type": "url", "url": "http://x", "name": "x"}]}, "mcp_servers"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
        ({"frobnicate": True}, "frobnicate"),
        ({"output_config": {"effort": "lowest"}}, "output_config.effort"),
        ({"output_config": {"task_budget": {"type": "tokens", "total": 9000}}}, "output_config.task_budget"),
        ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format.type"),
        ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format.schema"),
        ({"output_config": {"verbosity": "low"}}, "output_config.verbosity"),
        ({"max_tokens": True}, "max_tokens"),
        ({"stop_sequences": ["  "]}, "stop_sequences.0"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
                        ],
                    }
                ]
            },
            "messages.0.content.0.type",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages.0.content.0.type"),
        ({"messages": [{"role": "user", "content": 7}]}, "messages.0.content"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}
                ]
            },
            "messages.0.content.0.source.type",
        ),
    ],
)
def test_what_the_gateway_cannot_honour_is_refused(client: TestClient, extra: dict[str, Any], field: str) -> None:
    r = client.post("/v1/messages", json=_body(**extra))
    assert r.status_code == 400, r.text
    assert f"'{field}'" in r.json()["error"]["message"]


def test_documented_no_ops_are_accepted(client: TestClient) -> None:
    r = client.post(
        "/v1/messages",
        json=_body(
            thinking={"type": "disabled"},
            output_config={"effort": "high"},
            service_tier="auto",
            system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        ),
    )
    assert r.status_code == 200, r.text
    assert r.json()["content"] == [{"type": "text", "text": "echo: hello"}]


def test_top_k_reaches_the_model(client: TestClient) -> None:
    assert client.post("/v1/messages", json=_body(top_k=5)).status_code == 200
    sent = client.app.state.interlock.providers["echo"].received[-1]  # type: ignore[attr-defined]
    assert (sent.model_extra or {}).get("top_k") == 5


def test_structured_output_reaches_the_model_as_a_json_schema_response_format(client: TestClient) -> None:
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}
    fmt = {"format": {"type": "json_schema", "schema": schema}}
    for stream in (False, True):
        r = client.post("/v1/messages", json=_body(output_config=fmt, stream=stream))
        assert r.status_code == 200, r.text
        sent = client.app.state.interlock.providers["echo"].received[-1]  # type: ignore[attr-defined]
        assert sent.response_format.type == "json_schema"
        assert sent.response_format.json_schema.schema_ == schema
    assert orjson.loads(client.post("/v1/messages", json=_body(output_config=fmt)).json()["content"][0]["text"]) == {
        "echo": "hello"
    }
    plain = client.post("/v1/messages/count_tokens", json={"model": "echo", "messages": USER}).json()
    counted = client.post("/v1/messages/count_tokens", json={"model": "echo", "messages": USER, "output_config": fmt})
    assert counted.status_code == 200 and counted.json()["input_tokens"] > plain["input_tokens"]  # the schema counts


def test_error_code_header_on_other_refusals(client: TestClient) -> None:
    r = client.post("/v1/messages", json=_body(model="nope"))
    assert r.status_code == 404 and r.headers["x-interlock-error-code"] == "model_not_found"
    assert "code" not in r.json()["error"]


def test_stop_sequence_is_reported_and_cut(client: TestClient) -> None:
    # The fake provider ignores `stop`, as some upstreams do: the gateway cuts the text and names the sequence.
    body = _body(messages=[{"role": "user", "content": "one two STOP three"}], stop_sequences=["END", "STOP"])
    msg = client.post("/v1/messages", json=body).json()
    assert msg["content"] == [{"type": "text", "text": "echo: one two "}]
    assert msg["stop_reason"] == "stop_sequence" and msg["stop_sequence"] == "STOP"
    plain = client.post("/v1/messages", json=_body(stop_sequences=["STOP"])).json()
    assert plain["stop_reason"] == "end_turn" and plain["stop_sequence"] is None


def _events(client: TestClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    with client.stream("POST", "/v1/messages", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        text = r.read().decode()
    return [orjson.loads(line[6:]) for line in text.split("\n") if line.startswith("data: ")]


def test_streamed_stop_sequence_across_chunks(client: TestClient) -> None:
    # The fake streams a word per chunk: "lo ST" spans " hello" and " STOP".
    body = _body(messages=[{"role": "user", "content": "hello STOP there"}], stop_sequences=["lo ST"])
    events = _events(client, body)
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "echo: hel"
    delta = next(e for e in events if e["type"] == "message_delta")
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "lo ST"}


def test_streamed_message_start_reports_input_tokens(client: TestClient) -> None:
    body = _body(system="be brief", messages=[{"role": "user", "content": "hello you"}])
    plain = client.post("/v1/messages", json=body).json()
    events = _events(client, body)
    start = events[0]
    assert start["type"] == "message_start"
    assert start["message"]["usage"]["input_tokens"] == plain["usage"]["input_tokens"] > 0
    delta = next(e for e in events if e["type"] == "message_delta")
    assert delta["usage"]["input_tokens"] == plain["usage"]["input_tokens"]
    assert delta["usage"]["output_tokens"] == plain["usage"]["output_tokens"]


def test_image_only_message_reaches_the_model_as_an_image(client: TestClient) -> None:
    # Not dropped: the echo model takes it (it answers with the text, none); a text-only model refuses it
    # (test_images_are_refused_by_a_text_only_model).
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    r = client.post("/v1/messages", json=_body(messages=[{"role": "user", "content": [image]}]))
    assert r.status_code == 200, r.text
    bad = {**image, "source": {**image["source"], "media_type": "image/tiff"}}
    r = client.post("/v1/messages", json=_body(messages=[{"role": "user", "content": [bad]}]))
    assert r.status_code == 400 and "'messages.0.content.0.source.media_type'" in r.json()["error"]["message"]


# -- count_tokens ---------------------------------------------------------------------------------


def test_count_tokens(client: TestClient, ledger: Callable[[], list[UsageRecord]]) -> None:
    body = {"model": "echo", "system": "be brief", "messages": [{"role": "user", "content": "hello you"}]}
    r = client.post("/v1/messages/count_tokens", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"input_tokens": 4}  # the fake's tokenizer counts words
    assert r.headers["x-interlock-token-count-source"] == "tokenizer:echo"
    tools = [{"name": "lookup", "description": "find a thing", "input_schema": {"type": "object"}}]
    with_tools = client.post("/v1/messages/count_tokens", json={**body, "tools": tools}).json()
    assert with_tools["input_tokens"] > 4
    assert ledger() == []  # no model was called, nothing is billed


def test_count_tokens_refusals(client: TestClient) -> None:
    body = {"model": "echo", "messages": USER}
    key = client.post("/admin/keys", json={"name": "narrow", "models": ["echo-remote"]}).json()
    r = client.post("/v1/messages/count_tokens", json=body, headers={"authorization": f"Bearer {key['key']}"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    assert r.headers["x-interlock-error-code"] == "model_not_allowed"
    r = client.post("/v1/messages/count_tokens", json=body, headers={"authorization": "Bearer sk-il-forged"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = client.post("/v1/messages/count_tokens", json={**body, "model": "nope"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = client.post("/v1/messages/count_tokens", json={**body, "messages": [{"role": "user", "content": []}]})
    assert r.status_code == 400 and "'messages.0.content'" in r.json()["error"]["message"]
    r = client.post("/v1/messages/count_tokens", json={"model": "vectors", "messages": USER})
    assert r.status_code == 404  # an embedding model has no prompt to count
    audit = client.app.state.interlock.audit  # type: ignore[attr-defined]
    client.portal.call(audit.checkpoint)  # type: ignore[union-attr]
    denials = [e for e in client.portal.call(audit.recent, 100) if e.decision == "deny"]  # type: ignore[union-attr]
    assert [(e.action, e.actor_name) for e in denials] == [
        ("POST /v1/messages/count_tokens", "anonymous"),  # newest first: the forged key
        ("POST /v1/messages/count_tokens", "narrow"),
    ]
    scope = denials[1]
    assert scope.actor_id == key["id"] and scope.target == "echo" and "may not use" in scope.reason


LOCAL_CONFIG = """
[models.smollm2]
provider = "local"
model = "SmolLM2-135M-Instruct"
"""


@pytest.mark.model
def test_images_are_refused_by_a_text_only_model_and_local_counts_are_exact(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(LOCAL_CONFIG)
    settings = load_settings(config, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the local model did not load"
            time.sleep(0.1)
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
        body = {"model": "smollm2", "max_tokens": 8, "messages": [{"role": "user", "content": [image]}]}
        for stream in (False, True):
            r = client.post("/v1/messages", json={**body, "stream": stream})
            assert r.status_code == 400 and "does not accept images" in r.json()["error"]["message"]
        prompt = {"model": "smollm2", "messages": [{"role": "user", "content": "Say hello to the world."}]}
        r = client.post("/v1/messages/count_tokens", json=prompt)
        assert r.headers["x-interlock-token-count-source"] == "tokenizer:smollm2+template"
        counted = r.json()["input_tokens"]
        provider = client.app.state.interlock.providers["smollm2"]  # type: ignore[attr-defined]
        assert counted > provider.count_tokens("Say hello to the world.") > 0  # the chat template counts too
        plain = client.post("/v1/messages", json={**prompt, "max_tokens": 4}).json()
        assert plain["usage"]["input_tokens"] == counted  # what the engine was given
        with client.stream("POST", "/v1/messages", json={**prompt, "max_tokens": 4, "stream": True}) as s:
            first = next(line for line in s.iter_lines() if line.startswith("data: "))
        assert orjson.loads(first[6:])["message"]["usage"]["input_tokens"] == counted


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels):
        value = {"a": value}
    return value


def test_json_too_deep_to_forward_is_a_400_on_both_endpoints(client: TestClient) -> None:
    call = {"type": "tool_use", "id": "t1", "name": "f", "input": _deep(300)}
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
    ]
    r = client.post("/v1/messages", json=_body(messages=messages, tools=[{"name": "f"}]))
    assert r.status_code == 400 and "'messages.1.content.0.input'" in r.json()["error"]["message"]
    tools = [{"name": "f", "input_schema": _deep(300)}]
    for path, body in (
        ("/v1/messages", _body(tools=tools)),
        ("/v1/messages/count_tokens", {"model": "echo", "messages": USER, "tools": tools}),
    ):
        r = client.post(path, json=body)
        assert r.status_code == 400 and "'tools.0.input_schema'" in r.json()["error"]["message"], r.text
