"""Prompts and resources through the MCP gateway, over real sockets: `interlock serve` in a subprocess fronting
the test MCP server we own (stdio), the official `mcp` SDK's client as the agent.

Two upstreams of that server: `bank` (approved) and `fresh` (never approved).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import mcp_types as types
import pytest
from mcp import MCPError

from interlock.testing.mcp_server import INBOX
from tests.conftest import FAKE_CONFIG
from tests.e2e.conftest import Server, start_server
from tests.mcp_gateway.helpers import admin, audit_entries, ledger_rows, mcp_client, new_agent, stdio_server

pytestmark = pytest.mark.subprocess

ATTACKER = "GB33BUKB20201555555555"  # the IBAN the inbox e-mail's injection wants paid
LEAKED = "AKIAIOSFODNN7EXAMPLE"  # the key the e-mail leaks: the input guardrails redact it
READER = {
    "allow": ["bank__*", "prompt:bank__*", "resource:bank__mail://*", "resource:bank__notes://*"],
    "tools": {"bank__send_money": {"sensitive": True, "provenance_args": ["iban"]}},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("mcp-reads")
    server = start_server(
        tmp, FAKE_CONFIG + "\n[mcp]\nrefresh_s = 0.2\n" + stdio_server("bank") + stdio_server("fresh")
    )
    try:
        r = admin("POST", server, "/admin/mcp/servers/bank/approve")
        assert r.status_code == 200, r.text
        assert {"prompt:triage", "resource:mail://inbox/newest", "template:notes://{name}"} <= set(r.json()["approved"])
        yield server
    finally:
        server.proc.terminate()
        server.proc.wait(15)


def _texts(result: types.GetPromptResult) -> list[str]:
    out = []
    for m in result.messages:
        c = m.content
        if isinstance(c, types.TextContent):
            out.append(c.text)
        elif isinstance(c, types.EmbeddedResource) and isinstance(c.resource, types.TextResourceContents):
            out.append(c.resource.text)
    return out


async def test_an_agent_lists_the_approved_prompts_and_resources_its_policy_allows_under_gateway_names(
    server: Server,
) -> None:
    _, key = new_agent(server, "lister", policy=READER)
    async with mcp_client(server, key) as client:
        prompts = (await client.list_prompts()).prompts
        resources = (await client.list_resources()).resources
        templates = (await client.list_resource_templates()).resource_templates
    assert [p.name for p in prompts] == ["bank__triage"]  # `fresh` lists the same, but is not approved
    assert prompts[0].arguments and prompts[0].arguments[0].name == "tone"
    assert sorted(r.uri for r in resources) == [
        "interlock://bank/mail://inbox/count",
        "interlock://bank/mail://inbox/newest",
    ]
    assert [t.uri_template for t in templates] == ["interlock://bank/notes://{name}"]
    _, narrow = new_agent(server, "tools-only", policy={"allow": ["bank__*"]})  # tools' patterns open no reads
    async with mcp_client(server, narrow) as client:
        assert (await client.list_prompts()).prompts == []
        assert (await client.list_resources()).resources == []
        with pytest.raises(MCPError) as refused:
            await client.get_prompt("bank__triage", {"tone": "brief"})
    assert refused.value.message.startswith("prompt_not_allowed:") and "prompt:bank__triage" in refused.value.message


async def test_a_prompt_and_a_resource_are_screened_and_their_values_stay_untrusted(server: Server) -> None:
    agent, key = new_agent(server, "reader", policy=READER)
    async with mcp_client(server, key, run="reads-1") as client:
        prompt = await client.get_prompt("bank__triage", {"tone": "brief"})
        mail = await client.read_resource("interlock://bank/mail://inbox/newest")
        note = await client.read_resource("interlock://bank/notes://groceries")  # through the approved template
        hijacked = await client.call_tool("bank__send_money", {"iban": ATTACKER, "amount": 5})
    texts = _texts(prompt)
    assert texts[0] == "Triage this e-mail, briefly." and ATTACKER in texts[1]
    assert LEAKED in INBOX and LEAKED not in texts[1]  # the input guardrails redacted the leaked key
    (content,) = mail.contents
    assert isinstance(content, types.TextResourceContents) and content.uri == "interlock://bank/mail://inbox/newest"
    assert ATTACKER in content.text and LEAKED not in content.text
    (noted,) = note.contents
    assert isinstance(noted, types.TextResourceContents) and noted.text == "this is the note 'groceries'"
    text = "\n".join(b.text for b in hijacked.content if isinstance(b, types.TextContent))
    assert hijacked.is_error and "untrusted_provenance" in text  # the IBAN only the prompt and the mail supplied
    rows = ledger_rows(server, agent["id"], at_least=4)
    assert [(r["endpoint"], r["alias"], r["status"], r["deployment"], r["run_id"]) for r in rows] == [
        ("mcp", "bank__triage", 200, "mcp:bank", "reads-1"),
        ("mcp", "interlock://bank/mail://inbox/newest", 200, "mcp:bank", "reads-1"),
        ("mcp", "interlock://bank/notes://groceries", 200, "mcp:bank", "reads-1"),
        ("mcp", "bank__send_money", 403, "", "reads-1"),
    ]
    reads = audit_entries(server, "agent.mcp_read", lambda e: e.metadata_dict()["agent_id"] == agent["id"], 3)
    assert {(e.metadata_dict()["kind"], e.metadata_dict()["verdict"]) for e in reads} == {
        ("prompt", "allowed"),
        ("resource", "allowed"),
    }


async def test_unknown_unapproved_and_foreign_reads_are_refused_with_codes_that_say_why(server: Server) -> None:
    agent, key = new_agent(server, "prober", policy=READER)
    cases = [
        ("prompt", "bank__nothing", "prompt_unknown", types.INVALID_PARAMS),
        ("prompt", "fresh__triage", "prompt_unapproved", -32003),
        ("resource", "interlock://bank/mail://inbox/oldest", "resource_unknown", -32002),
        ("resource", "mail://inbox/newest", "resource_unknown", -32002),  # not a gateway URI
        ("resource", "interlock://fresh/mail://inbox/newest", "resource_unapproved", -32003),
        ("resource", "interlock://bank/notes://a/b", "resource_unknown", -32002),  # `{name}` is one segment
        ("resource", "interlock://bank/notes://%2E%2E", "resource_not_allowed", -32003),  # a `..` segment
    ]
    async with mcp_client(server, key) as client:
        for kind, name, code, rpc in cases:
            with pytest.raises(MCPError) as refused:
                if kind == "prompt":
                    await client.get_prompt(name, {})
                else:
                    await client.read_resource(name)
            assert refused.value.message.startswith(f"{code}:"), (name, refused.value.message)
            assert refused.value.code == rpc and refused.value.data["code"] == code
    rows = ledger_rows(server, agent["id"], at_least=len(cases))
    assert [r["status"] for r in rows] == [404, 403, 404, 404, 403, 404, 403]
    assert all(r["deployment"] == "" for r in rows)  # none reached an upstream


def test_hostile_requests_get_a_4xx_with_a_bounded_message(server: Server) -> None:
    _, key = new_agent(server, "hostile", policy=READER)
    headers = {"authorization": f"Bearer {key}", "accept": "application/json, text/event-stream"}
    huge = httpx.post(server.url + "/mcp", headers=headers, content=b"{" + b" " * (5 * 1024 * 1024) + b"}", timeout=30)
    assert huge.status_code == 413 and huge.json()["error"]["data"]["code"] == "request_too_large"
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    name = "bank__" + "x" * 50_000
    body = {"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {"name": name, "_meta": meta}}
    long = httpx.post(
        server.url + "/mcp",
        headers={**headers, "mcp-protocol-version": "2026-07-28", "mcp-method": "prompts/get", "mcp-name": name},
        json=body,
        timeout=30,
    )
    assert long.status_code == 400, long.text
    error = long.json()["error"]
    assert error["message"].startswith("prompt_unknown:") and len(error["message"]) < 400
