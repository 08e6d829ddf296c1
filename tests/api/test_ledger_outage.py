"""While the ledger can record nothing (the database refuses writes and the spool is full), requests get 503
instead of being served unmetered; /readyz says why; both recover when the database takes writes again."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import load_settings
from tests.conftest import ADMIN_KEY, FAKE_CONFIG


def test_a_full_spool_turns_requests_away_and_readyz_says_so(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(FAKE_CONFIG.replace("[store]\n", "[store]\nbusy_timeout_ms = 50\nspool_max_bytes = 4096\n"))
    home = tmp_path / "home"
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(home), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as app:
        assert app.get("/readyz").json()["ledger"] == "ok"
        holder = sqlite3.connect(home / "interlock.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        statuses = []
        for _ in range(100):
            r = app.post("/v1/chat/completions", json=body)
            statuses.append(r.status_code)
            if r.status_code == 503:
                assert r.json()["error"]["code"] == "ledger_unavailable" and r.headers["retry-after"] == "5"
                break
            time.sleep(0.01)  # let the writer try (and spool) each batch
        assert statuses[0] == 200 and statuses[-1] == 503
        ready = app.get("/readyz")
        assert ready.status_code == 503 and ready.json()["ledger"] == "full"
        holder.execute("ROLLBACK")
        holder.close()
        deadline = time.monotonic() + 20
        while app.get("/readyz").json()["ledger"] != "ok":
            assert time.monotonic() < deadline, "the ledger did not recover"
            time.sleep(0.1)
        assert app.post("/v1/chat/completions", json=body).status_code == 200
