"""The MCP servers page in-process: the test MCP server we own (stdio) listed with its tools' pin status and
scan flags, approved from the page, a flagged server refused unless forced, nothing to approve read-only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import load_settings
from tests.conftest import ADMIN_KEY, FAKE_CONFIG
from tests.mcp_gateway.helpers import stdio_server
from tests.ui.conftest import BASE, csrf_of


@pytest.fixture
def mcp_client(tmp_path: Path) -> Iterator[TestClient]:
    config = tmp_path / "interlock.toml"
    config.write_text(FAKE_CONFIG + stdio_server("bank") + stdio_server("notes", TEST_MCP_POISONED="1"))
    settings = load_settings(config, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), base_url=BASE) as client:
        yield client


def _sign_in(client: TestClient, key: str) -> str:
    r = client.post("/ui/signin", data={"key": key}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/ui/keys").text) if key == ADMIN_KEY else ""


def _section(page: str, server: str) -> str:
    return page.split(f'data-server="{server}"')[1].split("</section>")[0]


def _status(section: str, tool: str) -> str:
    row = section.split(f'<tr data-tool="{tool}">')[1].split("</tr>")[0]
    return row.split('class="status status-')[1].split('"')[0]


def test_servers_are_listed_and_approved_from_the_page(mcp_client: TestClient) -> None:
    csrf = _sign_in(mcp_client, ADMIN_KEY)
    page = mcp_client.get("/ui/mcp").text
    bank = _section(page, "bank")
    assert 'data-connected="true"' in bank and "(stdio)" in bank
    assert _status(bank, "bank__send_money") == "unapproved"
    r = mcp_client.post("/ui/mcp/bank/approve", data={"csrf_token": csrf})
    assert r.status_code == 200 and "MCP server bank approved" in r.text
    assert _status(_section(r.text, "bank"), "bank__send_money") == "approved"
    listed = {
        s["name"]: s
        for s in mcp_client.get("/admin/mcp/servers", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()["data"]
    }
    assert {t["status"] for t in listed["bank"]["tools"]} == {"approved"}  # the page pinned what the API reports


def test_a_flagged_server_is_refused_unless_forced(mcp_client: TestClient) -> None:
    csrf = _sign_in(mcp_client, ADMIN_KEY)
    notes = _section(mcp_client.get("/ui/mcp").text, "notes")
    assert "flagged by the poisoning scan" in notes and 'name="force"' in notes
    refused = mcp_client.post("/ui/mcp/notes/approve", data={"csrf_token": csrf})
    assert refused.status_code == 409 and "force" in refused.text
    assert _status(_section(mcp_client.get("/ui/mcp").text, "notes"), "notes__fetch_notes") == "unapproved"
    forced = mcp_client.post("/ui/mcp/notes/approve", data={"csrf_token": csrf, "force": "on"})
    assert forced.status_code == 200 and "forced past the scan flags on" in forced.text
    assert "approved (forced)" in _section(forced.text, "notes")


def test_a_read_only_session_sees_the_servers_and_cannot_approve(
    mcp_client: TestClient,
) -> None:
    r = mcp_client.post(
        "/admin/keys", json={"name": "auditor", "role": "admin_read"}, headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert r.status_code == 201, r.text
    _sign_in(mcp_client, r.json()["key"])
    page = mcp_client.get("/ui/mcp").text
    assert 'data-server="bank"' in page and "approve-server" not in page
    csrf = csrf_of(page)
    refused = mcp_client.post("/ui/mcp/bank/approve", data={"csrf_token": csrf})
    assert refused.status_code == 403


def test_without_servers_the_page_says_how_to_add_one(app_client: TestClient, sign_in: Callable[[str], str]) -> None:
    sign_in(ADMIN_KEY)
    assert 'id="no-mcp-servers"' in app_client.get("/ui/mcp").text
