"""The dashboard in a real browser: Debian's headless Chromium (/usr/bin/chromium) driven by Playwright.

The gateway runs with uvicorn in a thread on a free loopback port, with the fake models; the browser
signs in, clicks through the pages and reads what the charts draw. Playwright's own browser downloads
are never used (`scripts/install-chromium.sh` installs the Debian package; `make test` runs it).
Screenshots, if you take any while debugging, go to tmp_path, never into the repository.
"""

from __future__ import annotations

import csv
import io
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
from tests.mcp_gateway.helpers import stdio_server

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _chromium() -> None:
    """No skip: `make test` installs Chromium (scripts/install-chromium.sh); a machine without it fails here."""
    assert CHROMIUM.exists(), "the dashboard tests need Debian's chromium: run scripts/install-chromium.sh"


ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
ROI_CONFIG = """
[roi.task_types.triage]
minutes = 30
hourly_usd = 60
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway on a free loopback port; yields its base URL."""
    tmp = tmp_path_factory.mktemp("ui")
    (tmp / "interlock.toml").write_text(FAKE_CONFIG + ROI_CONFIG + stdio_server("bank"))
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

    def sign_in(self, key: str, lands: str = "/ui/") -> None:
        self.page.goto("/ui/")
        assert self.page.url.endswith("/ui/signin")
        self.page.fill("#key", key)
        self.page.click("#signin")
        self.page.wait_for_url(f"**{lands}")

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
                "/ui/routing": "Routing", "/ui/roi": "ROI", "/ui/mcp": "MCP servers", "/ui/agents": "Agents",
                "/ui/": "Overview"}  # fmt: skip
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


def _agent(server: str, name: str, policy: dict[str, Any] | None = None) -> tuple[str, str]:
    """An owner and an agent through the admin API; returns the agent's id and key."""
    r = httpx.post(f"{server}/admin/owners", json={"name": name, "email": f"{name}@example.com"}, headers=ADMIN)
    assert r.status_code == 201, r.text
    body = {"name": name, "owner_id": r.json()["id"], "description": "a test agent", "models": ["echo"],
            "policy": policy or {}}  # fmt: skip
    r = httpx.post(f"{server}/admin/agents", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), str(r.json()["key"])


def _agent_chat(server: str, key: str, text: str = "hi", run: str = "run-b") -> httpx.Response:
    tools = [{"type": "function", "function": {"name": "delete_all", "parameters": {"type": "object"}}}]
    body = {"model": "echo", "messages": [{"role": "user", "content": text}], "tools": tools}
    headers = {"authorization": f"Bearer {key}", "x-interlock-run-id": run}
    return httpx.post(f"{server}/v1/chat/completions", json=body, headers=headers)


def test_halt_and_resume_from_the_agents_page_with_a_governance_key(tab: Tab, server: str) -> None:
    agent_id, key = _agent(server, "halt-me")
    assert _agent_chat(server, key).status_code == 200
    _, governance = _api_key(server, "gov-browser", role="governance")
    tab.sign_in(governance, lands="/ui/agents")
    page = tab.page
    assert page.is_visible("#governance-badge")
    assert page.locator("header nav a").evaluate_all("links => links.map(a => a.getAttribute('href'))") == [
        "/ui/agents"
    ]
    row = page.locator(f'#agents-table tr[data-agent-id="{agent_id}"]')
    assert row.locator(".halted").get_attribute("data-halted") == "false"
    row.locator("input[name=reason]").fill("spending spree")
    row.locator("button[data-action=halt]").click()
    page.wait_for_selector("#notice")
    assert page.locator(f'#agents-table tr[data-agent-id="{agent_id}"] .halted').get_attribute("data-halted") == "true"
    refused = _agent_chat(server, key)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "agent_halted"
    assert "spending spree" in refused.json()["error"]["message"]
    page.locator(f'#halts-table tr[data-halt="agent:{agent_id}"] button[data-action=resume]').click()
    page.wait_for_selector("#notice:has-text('lifted')")
    assert _agent_chat(server, key).status_code == 200
    run = page.locator('#runs-table tr[data-run-id="run-b"]', has=page.locator("td")).first
    assert int(run.locator("[data-field=steps]").inner_text()) >= 1
    assert tab.errors == []


def test_a_governance_key_cannot_create_keys(tab: Tab, server: str) -> None:
    _, governance = _api_key(server, "gov-no-keys", role="governance")
    tab.sign_in(governance, lands="/ui/agents")
    page = tab.page
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    response = page.goto("/ui/keys")
    assert response is not None and response.status == 403
    assert "governance key" in page.inner_text("#error")
    status = page.evaluate(
        """async (csrf) => (await fetch("/ui/keys", {method: "POST", credentials: "same-origin",
                body: new URLSearchParams({name: "gov-made", csrf_token: csrf})})).status""",
        csrf,
    )
    assert status == 403
    keys = httpx.get(f"{server}/admin/keys", headers=ADMIN).json()["data"]
    assert not any(k["name"] == "gov-made" for k in keys)


def test_approve_a_held_call_from_the_queue(tab: Tab, server: str) -> None:
    _, key = _agent(server, "needs-approval", {"allow": ["delete_*"], "approve": ["delete_*"]})
    ask = 'clean [[call:delete_all {"path": "/srv"}]]'
    held = _agent_chat(server, key, ask).json()["choices"][0]
    assert "awaits approval apr_" in held["message"]["content"] and not held["message"].get("tool_calls")
    approval_id = held["message"]["content"].split("awaits approval ")[1].split(" ")[0]
    tab.sign_in(ADMIN_KEY)
    page = tab.page
    page.goto("/ui/agents")
    row = page.locator(f'#approvals-table tr[data-approval-id="{approval_id}"]')
    assert "/srv" in row.inner_text()
    row.locator("input[name=note]").fill("ok by me")
    row.locator("button[data-action=approve]").click()
    page.wait_for_selector("#notice")
    assert "approved" in page.inner_text("#notice")
    assert page.locator(f'#approvals-table tr[data-approval-id="{approval_id}"]').count() == 0
    passed = _agent_chat(server, key, ask).json()["choices"][0]
    assert passed["finish_reason"] == "tool_calls"
    assert passed["message"]["tool_calls"][0]["function"]["name"] == "delete_all"
    decided = httpx.get(f"{server}/admin/approvals/{approval_id}", headers=ADMIN).json()
    assert decided["status"] == "consumed" and decided["decided_by"].startswith("ui:admin")
    assert tab.errors == []


def test_approve_an_mcp_server_from_its_page(tab: Tab, server: str) -> None:
    tab.sign_in(ADMIN_KEY)
    page = tab.page
    page.goto("/ui/mcp")
    bank = page.locator('section[data-server="bank"]')
    assert bank.locator('tr[data-tool="bank__send_money"] td.status').inner_text() == "unapproved"
    bank.locator("button[data-action=approve-server]").click()
    page.wait_for_selector("#notice")
    assert "MCP server bank approved" in page.inner_text("#notice")
    cell = page.locator('section[data-server="bank"] tr[data-tool="bank__send_money"] td.status')
    assert cell.inner_text() == "approved"
    listed = httpx.get(f"{server}/admin/mcp/servers", headers=ADMIN).json()["data"]
    assert {t["status"] for s in listed if s["name"] == "bank" for t in s["tools"]} == {"approved"}
    assert tab.errors == []


def test_the_routing_chart_draws_the_routing_data(tab: Tab, server: str) -> None:
    for model in ("echo", "echo-remote", "echo-remote"):
        body = {"model": model, "messages": [{"role": "user", "content": "route me"}]}
        assert httpx.post(f"{server}/v1/chat/completions", json=body, headers=ADMIN).status_code == 200
    tab.sign_in(ADMIN_KEY)
    page = tab.page
    page.goto("/ui/routing")
    page.wait_for_selector("body[data-charts-ready=routing]")
    drawn = page.evaluate(
        """() => { const c = Chart.getChart("chart-served");
                   const sets = Object.fromEntries(c.data.datasets.map(d => [d.label, d.data]));
                   return {labels: c.data.labels, sets}; }"""
    )
    data = page.request.get("/ui/api/routing?days=30").json()
    assert drawn == {"labels": data["labels"], "sets": data["served"]}
    assert sum(data["served"]["echo-remote"]) >= 2
    table = page.locator("#routes-table tbody tr").evaluate_all("rows => rows.map(r => r.innerText)")
    assert any(t.startswith("echo-remote\techo-remote") for t in table), table
    assert tab.errors == []


def test_the_roi_page_shows_outcomes_and_labour_value(tab: Tab, server: str) -> None:
    _, token = _api_key(server, "roi-caller")
    body = {"model": "echo", "messages": [{"role": "user", "content": "triage this"}]}
    headers = {"authorization": f"Bearer {token}", "x-interlock-run-id": "roi-run"}
    assert httpx.post(f"{server}/v1/chat/completions", json=body, headers=headers).status_code == 200
    outcome = {"run_id": "roi-run", "task_type": "triage", "status": "completed"}
    r = httpx.post(f"{server}/v1/outcomes", json=outcome, headers={"authorization": f"Bearer {token}"})
    assert r.status_code in (200, 201), r.text
    tab.sign_in(ADMIN_KEY)
    page = tab.page
    page.goto("/ui/roi")
    row = page.locator('#roi-table tr[data-group="triage"]')
    assert int(row.locator("[data-field=completed]").inner_text()) >= 1
    report = httpx.get(f"{server}/admin/roi", headers=ADMIN).json()
    triage = next(x for x in report["data"] if x["group"] == "triage")
    assert row.locator("[data-field=value]").inner_text() == f"${triage['labour_value_micros'] / 1e6:,.2f}"
    assert float(row.locator("[data-field=hours]").inner_text()) == triage["labour_hours"] >= 0.5


def test_the_ledger_download_gives_the_filtered_rows_as_csv(tab: Tab, server: str, tmp_path: Path) -> None:
    key_id, token = _api_key(server, "csv-caller")
    for model in ("echo", "echo-remote", "echo"):
        body = {"model": model, "messages": [{"role": "user", "content": "export me"}]}
        headers = {"authorization": f"Bearer {token}"}
        assert httpx.post(f"{server}/v1/chat/completions", json=body, headers=headers).status_code == 200
    tab.sign_in(ADMIN_KEY)
    page = tab.page
    page.goto("/ui/ledger")
    page.fill("#ledger-filters input[name=key]", key_id)
    page.select_option("#ledger-filters select[name=model]", "echo")
    page.click("#ledger-filters button[type=submit]")
    page.wait_for_url("**/ui/ledger?*")
    assert page.get_attribute("#ledger-count", "data-total") == "2"
    shown = page.locator("#ledger-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.requestId)")
    with page.expect_download() as info:
        page.click("#download-csv")
    path = tmp_path / "ledger.csv"
    info.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [r["request_id"] for r in rows] == shown
    assert {(r["key_id"], r["alias"]) for r in rows} == {(key_id, "echo")}
    assert tab.errors == []
