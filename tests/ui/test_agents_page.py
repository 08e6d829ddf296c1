"""The Agents page in-process: registry, runs, approvals queue, halt and resume, and the governance sign-in."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.testclient import TestClient

from tests.conftest import ADMIN_KEY
from tests.ui.conftest import csrf_of

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
POLICY = {"allow": ["delete_*", "read_*"], "approve": ["delete_*"]}
TOOLS = [{"type": "function", "function": {"name": "delete_all", "parameters": {"type": "object"}}}]


def _agent(client: TestClient, name: str = "cleaner") -> tuple[str, str, str]:
    r = client.post("/admin/owners", json={"name": "Ann", "email": f"ann-{name}@example.com"}, headers=ADMIN)
    assert r.status_code == 201, r.text
    owner = r.json()["id"]
    body = {"name": name, "owner_id": owner, "description": "cleans", "models": ["echo"], "policy": POLICY}
    r = client.post("/admin/agents", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return owner, r.json()["id"], r.json()["key"]


def _chat(client: TestClient, key: str, text: str = "hi", run: str = "run-1") -> Any:
    body = {"model": "echo", "messages": [{"role": "user", "content": text}], "tools": TOOLS}
    return client.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}", "x-interlock-run-id": run}
    )


def _governance_key(new_key: Callable[..., tuple[str, str]]) -> str:
    return new_key("gov-lead", role="governance")[1]


def test_the_page_lists_owners_agents_and_runs_with_steps_and_cost(
    app_client: TestClient, sign_in: Callable[[str], str]
) -> None:
    owner, agent_id, key = _agent(app_client)
    for _ in range(3):
        assert _chat(app_client, key).status_code == 200
    sign_in(ADMIN_KEY)
    page = app_client.get("/ui/agents").text
    assert f'data-agent-id="{agent_id}"' in page and "ann-cleaner@example.com" in page and owner in page
    run = page.split('<tr data-run-id="run-1"')[1].split("</tr>")[0]
    assert 'data-field="steps">3<' in run and "echo" in run
    rows = app_client.get("/admin/spend?group=key", headers=ADMIN).json()["data"]
    cost = sum(r["cost_micros"] for r in rows)
    assert cost > 0 and f'data-field="cost">${cost / 1e6:,.6f}<' in run
    assert "/ui/ledger?run=run-1" in run
    assert "3 matching requests" in app_client.get("/ui/ledger?run=run-1&agent=" + agent_id).text


def test_a_governance_key_signs_in_to_the_agents_page_only(
    app_client: TestClient, sign_in: Callable[[str], str], new_key: Callable[..., tuple[str, str]]
) -> None:
    token = _governance_key(new_key)
    r = app_client.post("/ui/signin", data={"key": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/agents"
    page = app_client.get("/ui/agents")
    assert page.status_code == 200 and "governance-badge" in page.text
    assert 'href="/ui/keys"' not in page.text  # the nav offers the agents page alone
    csrf = csrf_of(page.text)
    for path in ("/ui/", "/ui/keys", "/ui/ledger", "/ui/audit", "/ui/api/overview", "/ui/ledger/export"):
        r = app_client.get(path, follow_redirects=False)
        assert r.status_code == 403 and "governance key" in r.text, path
    r = app_client.post("/ui/keys", data={"name": "sneaky", "csrf_token": csrf})
    assert r.status_code == 403
    assert not any(k["name"] == "sneaky" for k in app_client.get("/admin/keys", headers=ADMIN).json()["data"])
    r = app_client.post("/ui/signout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303


def test_halt_from_the_page_refuses_the_agent_and_only_governance_resumes(
    app_client: TestClient, sign_in: Callable[[str], str], new_key: Callable[..., tuple[str, str]]
) -> None:
    _, agent_id, key = _agent(app_client)
    csrf = sign_in(ADMIN_KEY)
    r = app_client.post("/ui/agents/halt", data={"scope": "agent", "id": agent_id, "reason": "odd spend",
                                                 "csrf_token": csrf})  # fmt: skip
    assert r.status_code == 200 and f"halted agent {agent_id}" in r.text
    refused = _chat(app_client, key)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "agent_halted"
    assert 'data-halt="agent:' in r.text and "only a governance key can lift it" in r.text
    r = app_client.post("/ui/agents/resume", data={"scope": "agent", "id": agent_id, "csrf_token": csrf})
    assert r.status_code == 403 and "governance" in r.text  # the admin halts but may not resume
    assert _chat(app_client, key).status_code == 403

    gov = _governance_key(new_key)
    app_client.cookies.clear()
    csrf = _gov_sign_in(app_client, gov)
    r = app_client.post("/ui/agents/resume", data={"scope": "agent", "id": agent_id, "csrf_token": csrf})
    assert r.status_code == 200 and "lifted" in r.text
    assert _chat(app_client, key).status_code == 200
    r = app_client.post("/ui/agents/halt", data={"scope": "all", "csrf_token": csrf})
    assert r.status_code == 200 and "halted every agent" in r.text
    assert _chat(app_client, key).json()["error"]["code"] == "agent_halted"
    audit = app_client.app.state.interlock.audit  # type: ignore[attr-defined]
    actions = [(e.action, e.actor_name) for e in app_client.portal.call(audit.recent, 100)]  # type: ignore[union-attr]
    assert ("agent.halt", "ui:admin") in actions and ("agent.resume_halt", "ui:gov-lead") in actions


def _gov_sign_in(client: TestClient, token: str) -> str:
    r = client.post("/ui/signin", data={"key": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/ui/agents").text)


def test_a_read_only_key_sees_the_agents_page_without_buttons(
    app_client: TestClient, sign_in: Callable[[str], str], new_key: Callable[..., tuple[str, str]]
) -> None:
    _, agent_id, _ = _agent(app_client)
    csrf = sign_in(new_key("auditor", role="admin_read")[1])
    page = app_client.get("/ui/agents").text
    assert agent_id in page and 'data-action="halt"' not in page
    r = app_client.post("/ui/agents/halt", data={"scope": "agent", "id": agent_id, "csrf_token": csrf})
    assert r.status_code == 403
    assert app_client.get("/admin/halts", headers=ADMIN).json()["data"] == []


def test_the_approvals_queue_approves_a_held_call(app_client: TestClient, sign_in: Callable[[str], str]) -> None:
    _, _, key = _agent(app_client)
    held = _chat(app_client, key, 'clean up [[call:delete_all {"path": "/tmp"}]]').json()["choices"][0]
    assert not held["message"].get("tool_calls") and "awaits approval apr_" in held["message"]["content"]
    approval_id = held["message"]["content"].split("awaits approval ")[1].split(" ")[0]
    csrf = sign_in(ADMIN_KEY)
    page = app_client.get("/ui/agents").text
    row = page.split(f'<tr data-approval-id="{approval_id}"')[1].split("</tr>")[0]
    assert "delete_all" in row and "/tmp" in row
    r = app_client.post(f"/ui/approvals/{approval_id}/approve", data={"note": "fine", "csrf_token": csrf})
    assert r.status_code == 200 and f"approval {approval_id}: approved" in r.text
    assert app_client.post(f"/ui/approvals/{approval_id}/deny", data={"csrf_token": csrf}).status_code == 409
    passed = _chat(app_client, key, 'clean up [[call:delete_all {"path": "/tmp"}]]').json()["choices"][0]
    assert passed["finish_reason"] == "tool_calls"
    assert json.loads(passed["message"]["tool_calls"][0]["function"]["arguments"]) == {"path": "/tmp"}
    assert app_client.get(f"/admin/approvals/{approval_id}", headers=ADMIN).json()["status"] == "consumed"
    assert app_client.post("/ui/approvals/x/explode", data={"csrf_token": csrf}).status_code == 404
