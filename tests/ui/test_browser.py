"""The dashboard in a real browser: Debian's headless Chromium (/usr/bin/chromium) driven by Playwright.

The gateway runs with uvicorn in a thread on a free loopback port, with the fake models; the browser
signs in, clicks through the pages and reads what the charts draw. Playwright's own browser downloads
are never used (`scripts/install-chromium.sh` installs the Debian package; `make test` runs it).
Screenshots, if you take any while debugging, go to tmp_path, never into the repository.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import playwright.sync_api as playwright_api
import pytest
import uvicorn

from interlock.app import create_app
from interlock.settings import load_settings
from tests.conftest import ADMIN_KEY, FAKE_CONFIG, free_port

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _chromium() -> None:
    """No skip: `make test` installs Chromium (scripts/install-chromium.sh); a machine without it fails here."""
    assert CHROMIUM.exists(), "the dashboard tests need Debian's chromium: run scripts/install-chromium.sh"


ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway on a free loopback port; yields its base URL."""
    tmp = tmp_path_factory.mktemp("ui")
    (tmp / "interlock.toml").write_text(FAKE_CONFIG)
    settings = load_settings(
        tmp / "interlock.toml", {"INTERLOCK_HOME": str(tmp / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY}
    )
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", ws="none")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="ui-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian."""
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield b
        finally:
            b.close()


class Tab:
    """A page in a fresh browser context, with the console errors it logged (a CSP violation is one)."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(base_url=base)
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: d.accept())  # hx-confirm

    def sign_in(self, key: str) -> None:
        self.page.goto("/ui/")
        assert self.page.url.endswith("/ui/signin")
        self.page.fill("#key", key)
        self.page.click("#signin")
        self.page.wait_for_url("**/ui/")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any, server: str) -> Iterator[Tab]:
    t = Tab(browser, server)
    try:
        yield t
    finally:
        t.close()


def _api_key(server: str, name: str, **fields: object) -> tuple[str, str]:
    r = httpx.post(f"{server}/admin/keys", json={"name": name, **fields}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), str(r.json()["key"])


def test_sign_in_and_every_page_loads(tab: Tab) -> None:
    tab.sign_in(ADMIN_KEY)
    page = tab.page
    assert page.inner_text("#who") == "ui:admin"
    headings = {"/ui/keys": "Virtual keys", "/ui/orgs": "Organisations and teams", "/ui/budgets": "Budgets",
                "/ui/ledger": "Ledger", "/ui/audit": "Audit log", "/ui/guardrails": "Guardrails",
                "/ui/agents": "Agents", "/ui/": "Overview"}  # fmt: skip
    for path, heading in headings.items():
        page.click(f'header nav a[href="{path}"]')
        page.wait_for_url(f"**{path}")
        assert page.inner_text("h1") == heading, path
    page.wait_for_selector("body[data-charts-ready=overview]")
    assert tab.errors == []


def test_create_and_revoke_a_key(tab: Tab, server: str) -> None:
    tab.sign_in(ADMIN_KEY)
    page = tab.page
    page.goto("/ui/keys")
    page.evaluate("window.stillHere = true")  # htmx swaps the page in place: no navigation, the marker stays
    page.fill("#create-key input[name=name]", "browser-made")
    page.fill("#create-key input[name=models]", "echo")
    page.click("#create-key button[type=submit]")
    token = page.inner_text("#new-token")
    assert token.startswith("sk-il-")
    row = page.locator("#keys-table tr", has_text="browser-made")
    assert row.locator(".status").inner_text() == "active"
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    call = {"json": body, "headers": {"authorization": f"Bearer {token}"}}
    assert httpx.post(f"{server}/v1/chat/completions", **call).status_code == 200  # type: ignore[arg-type]
    row.locator("button[data-action=revoke]").click()
    page.wait_for_selector("#notice")
    assert page.locator("#keys-table tr", has_text="browser-made").locator(".status").inner_text() == "revoked"
    assert httpx.post(f"{server}/v1/chat/completions", **call).status_code == 401  # type: ignore[arg-type]
    assert page.evaluate("window.stillHere") is True
    page.goto("/ui/audit?action=key.")
    actions = page.locator("#audit-table tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.action, r.cells[2].innerText])"
    )
    assert ["key.revoke", "ui:admin"] in actions and ["key.create", "ui:admin"] in actions
    assert tab.errors == []


def test_set_a_budget(tab: Tab) -> None:
    tab.sign_in(ADMIN_KEY)
    page = tab.page
    page.goto("/ui/orgs")
    page.fill("#create-org input[name=name]", "acme-budget")
    page.click("#create-org button[type=submit]")
    org_id = page.locator("#orgs-table tr", has_text="acme-budget").locator("code").inner_text()
    page.goto("/ui/budgets")
    page.select_option("#set-budget select[name=scope]", "org")
    page.fill("#set-budget input[name=scope_id]", org_id)
    page.select_option("#set-budget select[name=period]", "day")
    page.fill("#set-budget input[name=limit_usd]", "12.5")
    page.click("#set-budget button[type=submit]")
    row = page.locator(f'#budgets-table tr[data-budget="org:{org_id}:day"]')
    assert row.locator("[data-field=limit]").inner_text() == "$12.50"
    assert row.locator("[data-field=remaining]").inner_text() == "$12.50"
    assert "budget on org" in page.inner_text("#notice")
    assert tab.errors == []


def test_verify_the_audit_log(tab: Tab) -> None:
    tab.sign_in(ADMIN_KEY)
    page = tab.page
    page.goto("/ui/audit")
    page.click("#verify-button")
    result = page.wait_for_selector("#verify #verify-result")
    assert result.get_attribute("data-ok") == "true"
    assert "Audit log intact" in result.inner_text()
    assert tab.errors == []


def test_the_charts_draw_the_overview_data(tab: Tab, server: str) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "count these tokens please"}]}
    for _ in range(3):
        assert httpx.post(f"{server}/v1/chat/completions", json=body, headers=ADMIN).status_code == 200
    tab.sign_in(ADMIN_KEY)
    page = tab.page
    page.wait_for_selector("body[data-charts-ready=overview]")
    drawn = page.evaluate(
        """() => Object.fromEntries(["chart-spend", "chart-models", "chart-requests", "chart-latency"].map(id => {
             const c = Chart.getChart(id);
             return [id, {labels: c.data.labels, data: c.data.datasets.map(d => d.data)}];
           }))"""
    )
    data = page.request.get("/ui/api/overview?days=30").json()
    day = data["by_day"]
    assert drawn["chart-spend"] == {
        "labels": day["labels"],
        "data": [day["spend_usd"], day["reference_usd"], day["saved_usd"]],
    }
    assert drawn["chart-requests"]["data"] == [day["requests"], day["errors"]]
    assert drawn["chart-latency"]["data"] == [day["p50_ms"], day["p99_ms"]]
    assert "echo" in drawn["chart-models"]["labels"]
    assert data["totals"]["requests"] >= 3
    # echo is priced below the reference model, so the reference line runs above the spend
    assert sum(day["reference_usd"]) > sum(day["spend_usd"]) > 0
    assert page.inner_text('[data-total="requests"]') == str(data["totals"]["requests"])
    assert tab.errors == []


def test_a_read_only_key_changes_nothing(tab: Tab, server: str) -> None:
    target, _ = _api_key(server, "ro-target")
    _, reader = _api_key(server, "ro-auditor", role="admin_read")
    tab.sign_in(reader)
    page = tab.page
    assert page.is_visible("#read-only-badge")
    page.goto("/ui/keys")
    page.evaluate("window.stillHere = true")
    page.locator(f'#keys-table tr[data-key-id="{target}"] button[data-action=revoke]').click()
    error = page.wait_for_selector("#flash #error")
    assert "403" in error.inner_text() and "may only read" in error.inner_text()
    assert page.evaluate("window.stillHere") is True  # shown in the page's message area, in place
    page.fill("#create-key input[name=name]", "ro-made")
    page.click("#create-key button[type=submit]")
    page.wait_for_function("document.querySelector('#flash #error') !== null")
    keys = httpx.get(f"{server}/admin/keys", headers=ADMIN).json()["data"]
    assert next(k for k in keys if k["id"] == target)["status"] == "active"
    assert not any(k["name"] == "ro-made" for k in keys)
    # htmx logs a refused response as an error in the console; nothing else may appear there
    assert all("403" in e for e in tab.errors), tab.errors


def test_a_forged_change_without_the_csrf_token_is_refused(tab: Tab, server: str) -> None:
    tab.sign_in(ADMIN_KEY)
    page = tab.page
    page.goto("/ui/orgs")
    status = page.evaluate(
        """async () => (await fetch("/ui/orgs", {method: "POST", body: new URLSearchParams({name: "forged-org"}),
                                                 credentials: "same-origin"})).status"""
    )
    assert status == 403
    orgs = httpx.get(f"{server}/admin/orgs", headers=ADMIN).json()["data"]
    assert not any(o["name"] == "forged-org" for o in orgs)


def test_sign_out(tab: Tab) -> None:
    tab.sign_in(ADMIN_KEY)
    page = tab.page
    cookies = tab.context.cookies()
    session = next(c for c in cookies if c["name"] == "interlock_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    page.click("#signout")
    page.wait_for_url("**/ui/signin")
    assert not any(c["name"] == "interlock_session" for c in tab.context.cookies())
    tab.context.add_cookies([session])  # the old session id, replayed
    page.goto("/ui/keys")
    assert page.url.endswith("/ui/signin")
