"""Requests shaped as the coding agents send them, trimmed from captures of Claude Code 2.1.197 and Codex CLI
0.171.0 pointed at `interlock serve` (README, "Coding agents"): each field they send must be accepted and
mean what it means there. The prompts are shortened; every field and block type is as captured."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.testclient import TestClient

from interlock.store.records import UsageRecord

CLAUDE_CODE_HEADERS = {
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
    "prompt-caching-scope-2026-01-05,mid-conversation-system-2026-04-07,effort-2025-11-24",
    "user-agent": "claude-cli/2.1.197 (external, sdk-cli)",
}


def _claude_code_body(stream: bool) -> dict[str, Any]:
    bash = {
        "name": "Bash",
        "description": "Executes a given bash command.",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "The command to execute"}},
            "required": ["command"],
            "additionalProperties": False,
            "$schema": "https://json-schema.org/draft/2020-12/schema",
        },
    }
    return {
        "model": "echo",
        "max_tokens": 32000,
        "stream": stream,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=sdk-cli;"},
            {"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>Today's date is 2026-12-04.</system-reminder>"},
                    {"type": "text", "text": "say hi", "cache_control": {"type": "ephemeral"}},
                ],
            },
            {"role": "system", "content": "Available agent types for the Agent tool: general-purpose."},
        ],
        "tools": [bash],
        "metadata": {"user_id": orjson.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": "s"}).decode()},
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
    }


def _sent(client: TestClient) -> Any:
    return client.app.state.interlock.providers["echo"].received[-1]  # type: ignore[attr-defined]


def test_a_claude_code_turn_is_accepted_with_its_system_message_in_place(client: TestClient) -> None:
    r = client.post("/v1/messages?beta=true", json=_claude_code_body(stream=False), headers=CLAUDE_CODE_HEADERS)
    assert r.status_code == 200, r.text
    [block] = r.json()["content"]
    assert block["type"] == "tool_use" and block["name"] == "Bash"  # the fake calls the first tool
    sent = _sent(client)
    assert [m.role for m in sent.messages] == ["system", "user", "system"]
    assert sent.messages[2].text() == "Available agent types for the Agent tool: general-purpose."
    assert "reasoning_effort" not in (sent.model_extra or {})  # adaptive thinking and effort high: the defaults
    with client.stream(
        "POST", "/v1/messages?beta=true", json=_claude_code_body(stream=True), headers=CLAUDE_CODE_HEADERS
    ) as streamed:
        assert streamed.status_code == 200
        text = streamed.read().decode()
    assert "event: message_stop" in text and '"type":"tool_use"' in text


def test_claude_code_fields_the_gateway_cannot_honour_are_still_refused_by_name(
    client: TestClient, ledger: Callable[[], list[UsageRecord]]
) -> None:
    body = _claude_code_body(stream=False)
    body["context_management"] = {"edits": [{"type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens"}}]}
    r = client.post("/v1/messages", json=body, headers=CLAUDE_CODE_HEADERS)
    assert r.status_code == 400 and "'context_management.edits.0.type'" in r.json()["error"]["message"]
    body = _claude_code_body(stream=False)
    body["messages"][1]["content"] = [{"type": "image", "source": {"type": "url", "url": "http://x/i.png"}}]
    r = client.post("/v1/messages", json=body, headers=CLAUDE_CODE_HEADERS)
    assert r.status_code == 400 and "'messages.1.content.0.type'" in r.json()["error"]["message"]
    assert [(row.endpoint, row.status) for row in ledger()] == [("messages", 400)] * 2  # each settled once


def _codex_body() -> dict[str, Any]:
    function = {
        "type": "function",
        "name": "exec_command",
        "description": "Runs a command in a PTY.",
        "strict": False,
        "parameters": {
            "type": "object",
            "properties": {"cmd": {"type": "string"}},
            "required": ["cmd"],
            "additionalProperties": False,
        },
    }
    namespace = {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Tools for spawning and managing sub-agents.",
        "tools": [
            {
                "type": "function",
                "name": "close_agent",
                "description": "Close an agent.",
                "strict": False,
                "parameters": {
                    "type": "object",
                    "properties": {"target": {"type": "string"}},
                    "required": ["target"],
                    "additionalProperties": False,
                },
            }
        ],
    }
    thread = "01a23ea2-0d2d-7310-a45c-2c7c2ccf3b74"
    return {
        "model": "echo",
        "instructions": None,
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context/>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "say hi"}]},
        ],
        "tools": [function, namespace],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": thread,
        "client_metadata": {"thread_id": thread, "turn_id": "01a23ea2-0d7e-79e1-be4a-6f3c39434178"},
    }


def test_a_codex_turn_is_accepted_and_a_namespaced_call_sent_back_continues_it(client: TestClient) -> None:
    headers = {"originator": "codex_exec", "user-agent": "codex_exec/0.171.0", "accept": "text/event-stream"}
    with client.stream("POST", "/v1/responses", json=_codex_body(), headers=headers) as r:
        assert r.status_code == 200, r.read()
        frames = [orjson.loads(line[6:]) for line in r.read().decode().split("\n") if line.startswith("data: ")]
    final = frames[-1]["response"]
    assert frames[-1]["type"] == "response.completed" and final["store"] is False
    [call] = final["output"]
    assert call["type"] == "function_call" and call["name"] == "exec_command"
    assert [m.role for m in _sent(client).messages] == ["developer", "user", "user"]
    body = _codex_body()
    body["tools"] = [body["tools"][1]]
    body["tool_choice"] = "none"
    body["input"] += [
        {"type": "reasoning", "summary": [], "content": None, "encrypted_content": None},
        {
            "type": "function_call",
            "name": "close_agent",
            "namespace": "multi_agent_v1",
            "arguments": '{"target": "a1"}',
            "call_id": "call_1",
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "closed"},
    ]
    with client.stream("POST", "/v1/responses", json=body, headers=headers) as r:
        assert r.status_code == 200, r.read()
        r.read()
    sent = _sent(client)
    assert [c.function.name for c in sent.messages[3].tool_calls] == ["multi_agent_v1__close_agent"]
    assert sent.messages[4].role == "tool" and sent.messages[4].text() == "closed"


APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Use the `apply_patch` tool to edit files.",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: begin_patch hunk+ end_patch\nhunk: "x"'},
}


def test_codex_freeform_apply_patch_reaches_the_model_as_a_function_with_one_text_argument(
    client: TestClient,
) -> None:
    body = _codex_body()
    body["tools"] = [APPLY_PATCH, *body["tools"]]
    body["stream"] = False
    body["tool_choice"] = {"type": "custom", "name": "apply_patch"}
    r = client.post("/v1/responses", json=body)
    assert r.status_code == 200, r.text
    [call] = r.json()["output"]
    # The fake calls the first tool with '{"echo": true}', which is not an `input` string: passed on as is.
    assert call["type"] == "custom_tool_call" and call["input"] == '{"echo": true}'
    assert r.json()["tools"][0] == APPLY_PATCH  # echoed as sent
    sent = _sent(client)
    tool = sent.tools[0].function
    assert tool.name == "apply_patch" and tool.parameters["required"] == ["input"]
    assert "lark grammar" in (tool.description or "") and "hunk+" in (tool.description or "")
    assert sent.tool_choice.function == {"name": "apply_patch"}
    body["tool_choice"] = "auto"
    body["input"] += [
        {"type": "custom_tool_call", "call_id": "call_9", "name": "apply_patch", "input": "*** Begin Patch\n"},
        {"type": "custom_tool_call_output", "call_id": "call_9", "output": "Done!"},
    ]
    assert client.post("/v1/responses", json=body).status_code == 200
    sent = _sent(client)
    [replayed] = sent.messages[3].tool_calls
    assert orjson.loads(replayed.function.arguments) == {"input": "*** Begin Patch\n"}
    assert sent.messages[4].role == "tool" and sent.messages[4].text() == "Done!"


def test_bad_custom_tools_are_refused_by_field(client: TestClient, ledger: Callable[[], list[UsageRecord]]) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tools": [{**APPLY_PATCH, "format": {"type": "grammar", "syntax": "ebnf", "definition": "x"}}]}, "syntax"),
        ({"tools": [{**APPLY_PATCH, "format": {"type": "grammar", "syntax": "lark"}}]}, "definition"),
        ({"tools": [{**APPLY_PATCH, "name": "apply patch"}]}, "name"),
        ({"tools": [APPLY_PATCH, {**APPLY_PATCH}]}, "a second tool is called 'apply_patch'"),
        ({"tools": [APPLY_PATCH], "tool_choice": {"type": "custom", "name": "other"}}, "custom 'other' is not in"),
        (
            {"input": [{"type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": {"deep": [1]}}]},
            "input[0].input",
        ),
    ]
    for patch, expected in cases:
        body = {"model": "echo", "input": "hi", "tools": [APPLY_PATCH], **patch}
        r = client.post("/v1/responses", json=body)
        assert r.status_code == 400, (patch, r.text)
        assert expected in r.json()["error"]["message"] + str(r.json()["error"].get("param")), r.json()
    assert [(row.endpoint, row.status) for row in ledger()] == [("responses", 400)] * len(cases)
