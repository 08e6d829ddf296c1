"""Virtual keys through /admin/keys: creation, scopes, expiry, revocation, and no plaintext at rest."""

from __future__ import annotations

import sqlite3
import time

from starlette.testclient import TestClient

from interlock.settings import Settings

MSG = [{"role": "user", "content": "hi"}]


def _create(client: TestClient, **body: object) -> dict:  # type: ignore[type-arg]
    r = client.post("/admin/keys", json={"name": "app", **body})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _chat(client: TestClient, key: str | None, model: str = "echo") -> object:
    headers = {"authorization": f"Bearer {key}"} if key else {"authorization": ""}
    return client.post("/v1/chat/completions", json={"model": model, "messages": MSG}, headers=headers)


def test_missing_and_bad_keys_are_401(client: TestClient) -> None:
    r = _chat(client, None)
    assert r.status_code == 401 and "missing API key" in r.json()["error"]["message"]  # type: ignore[attr-defined]
    r = _chat(client, "sk-il-not-a-key")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"  # type: ignore[attr-defined]


def test_created_key_works_and_is_stored_hashed(client: TestClient, settings: Settings) -> None:
    created = _create(client, owner="team-a")
    token = created["key"]
    assert token.startswith("sk-il-") and "hash" not in created
    assert _chat(client, token).status_code == 200  # type: ignore[attr-defined]
    listed = client.get("/admin/keys").json()["data"]
    assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0] and "hash" not in listed[0]
    db = sqlite3.connect(settings.home / "interlock.db")
    dump = "\n".join(db.iterdump())
    assert token not in dump  # only the hash is at rest


def test_x_api_key_header_works(client: TestClient) -> None:
    token = _create(client)["key"]
    r = client.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": MSG},
        headers={"authorization": "", "x-api-key": token},
    )
    assert r.status_code == 200


def test_scoped_key_gets_403_with_a_reason(client: TestClient) -> None:
    token = _create(client, models=["echo"])["key"]
    assert _chat(client, token, "echo").status_code == 200  # type: ignore[attr-defined]
    r = _chat(client, token, "echo-remote")
    assert r.status_code == 403  # type: ignore[attr-defined]
    assert "may not use model 'echo-remote'" in r.json()["error"]["message"]  # type: ignore[attr-defined]
    models = client.get("/v1/models", headers={"authorization": f"Bearer {token}"}).json()["data"]
    assert [m["id"] for m in models] == ["echo"]


def test_tag_scope(client: TestClient) -> None:
    token = _create(client, models=["tag:local"])["key"]
    assert _chat(client, token, "echo").status_code == 200  # type: ignore[attr-defined]
    assert _chat(client, token, "echo-remote").status_code == 403  # type: ignore[attr-defined]


def test_revoked_key_is_401_at_once(client: TestClient) -> None:
    created = _create(client)
    assert _chat(client, created["key"]).status_code == 200  # type: ignore[attr-defined]
    assert client.post(f"/admin/keys/{created['id']}/revoke").json() == {"id": created["id"], "revoked": True}
    r = _chat(client, created["key"])
    assert r.status_code == 401 and r.json()["error"]["code"] == "revoked_api_key"  # type: ignore[attr-defined]
    assert client.post(f"/admin/keys/{created['id']}/revoke").status_code == 404


def test_expired_key_is_401(client: TestClient) -> None:
    token = _create(client, expires_at=time.time() - 1)["key"]
    r = _chat(client, token)
    assert r.status_code == 401 and r.json()["error"]["code"] == "expired_api_key"  # type: ignore[attr-defined]


def test_admin_endpoints_need_the_admin_key(client: TestClient) -> None:
    token = _create(client)["key"]
    r = client.get("/admin/keys", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required"


def test_create_key_validates_models(client: TestClient) -> None:
    r = client.post("/admin/keys", json={"name": "x", "models": ["nope"]})
    assert r.status_code == 400 and "nope" in r.json()["error"]["message"]
    assert client.post("/admin/keys", json={}).status_code == 400


def test_spend_by_key(client: TestClient) -> None:
    created = _create(client)
    for _ in range(3):
        _chat(client, created["key"])
    rows = client.get("/admin/spend?group=key").json()["data"]
    mine = next(r for r in rows if r["group"] == created["id"])
    assert mine["requests"] == 3 and mine["cost_micros"] == 3 * (1 * 2 + 6 * 2)  # "hi": 1 in, "echo: hi": 2 out
    assert client.get("/admin/spend?group=nope").status_code == 400


def test_read_only_admin_key(client: TestClient) -> None:
    reader = _create(client, name="auditor", role="admin_read")["key"]
    auth = {"authorization": f"Bearer {reader}"}
    assert client.get("/admin/keys", headers=auth).status_code == 200
    assert client.get("/admin/spend?group=key", headers=auth).status_code == 200
    assert client.get("/admin/budgets", headers=auth).status_code == 200
    for method, path, body in [("POST", "/admin/keys", {"name": "x"}), ("PUT", "/admin/rate-limits", {})]:
        r = client.request(method, path, json=body, headers=auth)
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_read_only"
    assert client.post("/admin/keys", json={"name": "x", "role": "superuser"}).status_code == 400


def test_suspend_and_resume(client: TestClient) -> None:
    created = _create(client)
    path = f"/admin/keys/{created['id']}"
    assert client.post(f"{path}/suspend", json={"reason": "looping"}).json() == {"id": created["id"], "suspended": True}
    r = _chat(client, created["key"])
    assert r.status_code == 403 and "looping" in r.json()["error"]["message"]  # type: ignore[attr-defined]
    assert client.get("/admin/keys").json()["data"][0]["status"] == "suspended"
    assert client.post(f"{path}/resume").json() == {"id": created["id"], "suspended": False}
    assert _chat(client, created["key"]).status_code == 200  # type: ignore[attr-defined]
    assert client.post(f"{path}/suspend").status_code == 200  # the body is optional
    assert client.post(f"{path}/suspend", json={"reason": 5}).status_code == 400
    missing = client.post("/admin/keys/key_nope/resume")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "key_not_found"
