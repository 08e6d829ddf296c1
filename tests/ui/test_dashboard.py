"""The dashboard over HTTP, in-process: sessions, CSRF, roles, bad input and what each page shows."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from interlock.ui import ledger
from tests.conftest import ADMIN_KEY

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def _audit(client: TestClient) -> list[dict[str, object]]:
    state = client.app.state.interlock  # type: ignore[attr-defined]
    entries = client.portal.call(state.audit.recent, 200)  # type: ignore[union-attr]
    return [{"action": e.action, "actor": e.actor_name, "decision": e.decision, "reason": e.reason} for e in entries]


def test_pages_need_a_session(app_client: TestClient) -> None:
    r = app_client.get("/ui/keys", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/signin"
    r = app_client.get("/ui/api/overview", headers={"hx-request": "true"}, follow_redirects=False)
    assert r.status_code == 204 and r.headers["hx-redirect"] == "/ui/signin"
    r = app_client.post("/ui/keys", data={"name": "x"}, follow_redirects=False)
    assert r.status_code == 303
    assert app_client.get("/ui", follow_redirects=False).headers["location"].endswith("/ui/")


def test_the_session_cookie_is_httponly_strict_and_secure_behind_tls(app_client: TestClient) -> None:
    r = app_client.post("/ui/signin", data={"key": ADMIN_KEY}, follow_redirects=False)
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie
    assert ADMIN_KEY not in cookie
    r = app_client.post(
        "/ui/signin", data={"key": ADMIN_KEY}, headers={"x-forwarded-proto": "https"}, follow_redirects=False
    )
    assert "Secure" in r.headers["set-cookie"]


def test_pages_carry_security_headers(app_client: TestClient, sign_in: Callable[[str], str]) -> None:
    sign_in(ADMIN_KEY)
    r = app_client.get("/ui/")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"


def test_sign_in_refuses_unknown_ordinary_and_cross_site(
    app_client: TestClient, new_key: Callable[..., tuple[str, str]]
) -> None:
    r = app_client.post("/ui/signin", data={"key": "sk-il-nope"})
    assert (
        r.status_code == 401
        and "invalid API key" in r.text
        and "interlock_session" not in r.headers.get("set-cookie", "")
    )
    _, token = new_key("app")
    r = app_client.post("/ui/signin", data={"key": token})
    assert r.status_code == 403 and "admin_read" in r.text
    r = app_client.post("/ui/signin", data={"key": ADMIN_KEY}, headers={"origin": "https://evil.example"})
    assert r.status_code == 403 and "another site" in r.text
    denials = [e for e in _audit(app_client) if e["action"] == "ui.signin" and e["decision"] == "deny"]
    assert len(denials) == 3 and {e["actor"] for e in denials} == {"anonymous", "app"}


def test_a_change_without_the_csrf_token_is_refused(app_client: TestClient, sign_in: Callable[[str], str]) -> None:
    csrf = sign_in(ADMIN_KEY)
    r = app_client.post("/ui/orgs", data={"name": "forged"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = app_client.post("/ui/orgs", data={"name": "forged", "csrf_token": "x" + csrf})
    assert r.status_code == 403
    assert "forged" not in app_client.get("/admin/orgs", headers=ADMIN).text
    r = app_client.post("/ui/orgs", data={"name": "real"}, headers={"x-csrf-token": csrf})
    assert r.status_code == 200 and "organisation real created" in r.text
    r = app_client.post("/ui/orgs", data={"name": "also-real", "csrf_token": csrf})
    assert r.status_code == 200
    names = {o["name"] for o in app_client.get("/admin/orgs", headers=ADMIN).json()["data"]}
    assert names == {"real", "also-real"}
    made = [e for e in _audit(app_client) if e["action"] == "org.create"]
    assert {e["actor"] for e in made} == {"ui:admin"}


def test_a_read_only_key_sees_everything_and_changes_nothing(
    app_client: TestClient, sign_in: Callable[[str], str], new_key: Callable[..., tuple[str, str]]
) -> None:
    target, _ = new_key("target")
    _, reader = new_key("auditor", role="admin_read")
    csrf = sign_in(reader)
    for path in ("/ui/", "/ui/keys", "/ui/orgs", "/ui/budgets", "/ui/ledger", "/ui/audit", "/ui/guardrails"):
        r = app_client.get(path)
        assert r.status_code == 200 and "read-only" in r.text, path
    assert "target" in app_client.get("/ui/keys").text
    r = app_client.post(f"/ui/keys/{target}/revoke", data={"csrf_token": csrf}, headers={"hx-request": "true"})
    assert r.status_code == 403 and "may only read" in r.text
    assert r.headers["hx-retarget"] == "#flash"
    r = app_client.post("/ui/budgets", data={"scope": "key", "scope_id": target, "period": "day", "limit_usd": "1"},
                        headers={"x-csrf-token": csrf})  # fmt: skip
    assert r.status_code == 403
    keys = app_client.get("/admin/keys", headers=ADMIN).json()["data"]
    assert next(k for k in keys if k["id"] == target)["status"] == "active"
    assert app_client.get("/admin/budgets", headers=ADMIN).json()["data"] == []
    refused = [e for e in _audit(app_client) if e["decision"] == "deny" and str(e["action"]).startswith("ui POST")]
    assert len(refused) == 2 and {e["actor"] for e in refused} == {"ui:auditor"}


def test_a_revoked_key_ends_its_sessions(
    app_client: TestClient, sign_in: Callable[[str], str], new_key: Callable[..., tuple[str, str]]
) -> None:
    key_id, reader = new_key("auditor", role="admin_read")
    sign_in(reader)
    assert app_client.get("/ui/keys", follow_redirects=False).status_code == 200
    assert app_client.post(f"/admin/keys/{key_id}/revoke", headers=ADMIN).status_code == 200
    assert app_client.get("/ui/keys", follow_redirects=False).status_code == 303


def test_sign_out_ends_the_session_on_the_server(app_client: TestClient, sign_in: Callable[[str], str]) -> None:
    csrf = sign_in(ADMIN_KEY)
    session = app_client.cookies["interlock_session"]
    r = app_client.post("/ui/signout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/signin"
    app_client.cookies.set("interlock_session", session, path="/ui")  # replay the old cookie
    assert app_client.get("/ui/keys", follow_redirects=False).status_code == 303
    assert [e["action"] for e in _audit(app_client)][:2] == ["ui.signout", "ui.signin"]


def test_bad_input_is_a_4xx_page(app_client: TestClient, sign_in: Callable[[str], str]) -> None:
    csrf = sign_in(ADMIN_KEY)
    h = {"x-csrf-token": csrf}
    r = app_client.post(
        "/ui/budgets", data={"scope": "org", "scope_id": "o", "period": "day", "limit_usd": "abc"}, headers=h
    )
    assert r.status_code == 400 and "limit_usd" in r.text
    r = app_client.post(
        "/ui/budgets", data={"scope": "org", "scope_id": "org_x", "period": "day", "limit_usd": "1"}, headers=h
    )
    assert r.status_code == 404 and "no org with id" in r.text
    r = app_client.post("/ui/guardrails", data={"scope": "model", "scope_id": "echo", "rules": "{nope"}, headers=h)
    assert r.status_code == 400 and "not JSON" in r.text
    r = app_client.post(
        "/ui/keys", content=b"\xff\xfe=\xff", headers={**h, "content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 400
    r = app_client.post("/ui/keys", content=b"a=" + b"x" * 70_000, headers=h)
    assert r.status_code == 413
    r = app_client.post("/ui/keys/key_x/explode", data={}, headers=h)
    assert r.status_code == 404
    assert app_client.get("/ui/ledger?status=teapot").status_code == 400
    assert app_client.get("/ui/api/overview?days=0").status_code == 400
    assert app_client.get("/ui/ledger/req_missing").status_code == 404


def test_the_ledger_explorer_filters_and_shows_one_request(
    app_client: TestClient, sign_in: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for model in ("echo", "echo", "echo-remote"):
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        assert app_client.post("/v1/chat/completions", json=body, headers=ADMIN).status_code == 200
    sign_in(ADMIN_KEY)
    assert "3 matching requests" in app_client.get("/ui/ledger").text
    page = app_client.get("/ui/ledger?model=echo-remote&status=ok").text
    assert "1 matching request." in page
    assert "0 matching requests" in app_client.get("/ui/ledger?status=error").text
    assert "0 matching requests" in app_client.get("/ui/ledger?since=2999-01-01").text
    monkeypatch.setattr(ledger, "COUNT_CAP", 2)  # a large ledger is not counted to its end on every view
    assert "more than 2 matching requests" in app_client.get("/ui/ledger").text
    request_id = page.split('data-request-id="')[1].split('"')[0]
    detail = app_client.get(f"/ui/ledger/{request_id}").text
    assert "deployment" in detail and "echo-remote" in detail and "Not captured" in detail


def test_overview_data_matches_the_spend_report(app_client: TestClient, sign_in: Callable[[str], str]) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hello there"}]}
    for _ in range(2):
        assert app_client.post("/v1/chat/completions", json=body, headers=ADMIN).status_code == 200
    sign_in(ADMIN_KEY)
    data = app_client.get("/ui/api/overview?days=7").json()
    report = app_client.get("/admin/spend?group=model", headers=ADMIN).json()
    assert data["totals"]["requests"] == 2 and data["totals"]["errors"] == 0
    assert data["by_model"]["labels"] == ["echo"]
    assert round(data["totals"]["spend_usd"] * 1e6) == report["summary"]["spent_micros"]
    assert round(data["totals"]["reference_usd"] * 1e6) == report["summary"]["reference_cost_micros"]
    assert data["totals"]["p50_ms"] is not None and data["totals"]["p99_ms"] >= data["totals"]["p50_ms"]


def test_audit_verification_reports_an_intact_log(app_client: TestClient, sign_in: Callable[[str], str]) -> None:
    sign_in(ADMIN_KEY)
    r = app_client.get("/ui/audit/verify")
    assert r.status_code == 200 and 'data-ok="true"' in r.text and "Audit log intact" in r.text
    assert "ui.signin" in app_client.get("/ui/audit?action=ui.").text
