"""Admin actions and denials reach the tamper-evident audit log, without secrets or prompts."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from interlock.audit.log import verify_home
from interlock.audit.sqlite_store import SqliteAuditStore
from interlock.settings import Settings


def _entries(client: TestClient) -> list:  # type: ignore[type-arg]
    audit = client.app.state.interlock.audit  # type: ignore[attr-defined]
    client.portal.call(audit.checkpoint)  # type: ignore[union-attr]
    return list(reversed(client.portal.call(audit.recent, 100)))  # type: ignore[union-attr]


def test_admin_actions_and_denials_are_audited(client: TestClient, settings: Settings, home: Path) -> None:
    created = client.post("/admin/keys", json={"name": "app", "models": ["echo"]}).json()
    token = created["key"]
    secret_prompt = "my password is hunter2"
    auth = {"authorization": f"Bearer {token}"}
    client.post(
        "/v1/chat/completions",
        json={"model": "echo-remote", "messages": [{"role": "user", "content": secret_prompt}]},
        headers=auth,
    )
    client.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "x"}]},
        headers={"authorization": "Bearer sk-il-forged"},
    )
    client.get("/admin/keys", headers=auth)
    client.post(f"/admin/keys/{created['id']}/revoke")
    entries = _entries(client)
    summary = [(e.action, e.decision) for e in entries]
    assert ("key.create", "allow") in summary and ("key.revoke", "allow") in summary
    denials = [e for e in entries if e.decision == "deny"]
    assert {e.action for e in denials} == {"POST /v1/chat/completions", "GET /admin/keys"}
    scope_denial = next(e for e in denials if e.target == "echo-remote")
    assert scope_denial.actor_id == created["id"] and "may not use" in scope_denial.reason
    dump = repr(entries)
    assert secret_prompt not in dump and token not in dump and "sk-il-forged" not in dump
    # The whole log verifies offline, as `interlock audit verify` does.
    store = SqliteAuditStore.from_settings(settings)
    store.open()
    try:
        report = verify_home(store, home)
    finally:
        store.close()
    assert report.ok, report


def test_refused_admin_calls_are_audited_before_their_body_is_read(client: TestClient) -> None:
    reader = client.post("/admin/keys", json={"name": "auditor", "role": "admin_read"}).json()
    anonymous = client.get("/admin/budgets", headers={"authorization": ""})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "missing_api_key"
    read_only = client.post("/admin/orgs", content=b"not json", headers={"authorization": f"Bearer {reader['key']}"})
    assert read_only.status_code == 403 and read_only.json()["error"]["code"] == "admin_read_only"
    denials = [(e.action, e.actor_id, e.actor_name, e.metadata_dict()["status"]) for e in _entries(client)[1:]]
    assert denials == [
        ("GET /admin/budgets", None, "anonymous", 401),
        ("POST /admin/orgs", reader["id"], "auditor", 403),
    ]
