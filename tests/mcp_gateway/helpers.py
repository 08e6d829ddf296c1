"""What the MCP gateway's socket tests share: upstream config tables, admin calls, agents, the SDK client,
audit reads."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from interlock.audit.chain import AuditEntry
from interlock.audit.stores import open_audit_store
from interlock.settings import load_settings
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server


def stdio_server(name: str, **env: str) -> str:
    """A `[[mcp.servers]]` table running the test MCP server we own over stdio, with `env` set for it."""
    pairs = ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items())
    extra = f"env = {{ {pairs} }}\n" if env else ""
    return (
        f'\n[[mcp.servers]]\nname = "{name}"\ncommand = {json.dumps(sys.executable)}\n'
        f'args = ["-m", "interlock.testing.mcp_server"]\n{extra}'
    )


def admin(method: str, server: Server, path: str, **kw: Any) -> httpx.Response:
    """An admin API call to `server`."""
    return httpx.request(method, server.url + path, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30, **kw)


def new_agent(server: Server, name: str, **fields: Any) -> tuple[dict[str, Any], str]:
    """An agent with an owner of its own (`fields`: policy, caps, description …); returns it and its key."""
    owner = admin("POST", server, "/admin/owners", json={"name": "Ann Owner", "email": f"ann+{name}@example.com"})
    assert owner.status_code == 201, owner.text
    body = {"name": name, "owner_id": owner.json()["id"], "description": "pays invoices", **fields}
    r = admin("POST", server, "/admin/agents", json=body)
    assert r.status_code == 201, r.text
    return r.json(), r.json()["key"]


@contextlib.asynccontextmanager
async def mcp_client(server: Server, key: str, run: str | None = None, **kw: Any) -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP, authenticated with `key`, in run `run` (a header) if given."""
    headers = {"authorization": f"Bearer {key}", **({"x-interlock-run-id": run} if run else {})}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(server.url + "/mcp", http_client=http), cache=None, **kw) as client,
    ):
        yield client


def audit_entries(
    server: Server, action: str, where: Callable[[AuditEntry], bool] = lambda e: True, at_least: int = 1
) -> list[AuditEntry]:
    """The newest entries of `action` that satisfy `where`, once there are `at_least` (or after 10 s)."""
    settings = load_settings(None, {"INTERLOCK_HOME": str(server.home)})
    deadline = time.monotonic() + 10
    while True:
        store = open_audit_store(settings)
        store.open()
        try:
            found = [e for e in store.recent(500) if e.action == action and where(e)]
        finally:
            store.close()
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def ledger_rows(server: Server, agent_id: str, at_least: int) -> list[dict[str, Any]]:
    """The agent's ledger rows, oldest first, once there are `at_least` (the writer flushes within 100 ms)."""
    deadline = time.monotonic() + 10
    while True:
        with contextlib.closing(sqlite3.connect(server.home / "interlock.db")) as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute("SELECT * FROM usage WHERE agent_id = ? ORDER BY ts", (agent_id,))]
        if len(rows) >= at_least or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)
