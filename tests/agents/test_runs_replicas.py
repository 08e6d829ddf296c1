"""Run caps across replicas: two apps on one database and one real Redis share each run's count, and a run
whose Redis state is lost is re-seeded from the ledger (Redis on 127.0.0.1:6379 db 15, a prefix per test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import load_settings
from tests.conftest import ADMIN_KEY, REDIS

CONFIG = """
[plugins]
modules = ["interlock.testing.fake"]

[store]
flush_interval_ms = 5

[governance]
redis_url = "{redis}"
redis_prefix = "{prefix}"

[models.echo]
provider = "fake"
price_input_per_mtok = 1
price_output_per_mtok = 2
"""


def _replica(tmp_path: Path, prefix: str) -> TestClient:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(redis=REDIS, prefix=prefix))
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    return TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"})


def _step(app: TestClient, key: str) -> Any:
    return app.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "next step"}]},
        headers={"authorization": f"Bearer {key}", "x-interlock-run-id": "job-1"},
    )


def _flush(app: TestClient) -> None:
    app.portal.call(app.app.state.interlock.store.flush)  # type: ignore[attr-defined]


def test_two_replicas_share_a_runs_step_cap_and_lost_state_is_re_seeded(
    tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERLOCK_ADMIN_KEY", ADMIN_KEY)
    with _replica(tmp_path, prefix) as a:
        owner = a.post("/admin/owners", json={"name": "Ann", "email": "ann@example.com"}).json()
        body = {"name": "bot", "owner_id": owner["id"], "description": "d", "caps": {"max_steps": 3}}
        key = a.post("/admin/agents", json=body).json()["key"]
        with _replica(tmp_path, prefix) as b:  # started after the agent exists: it knows it
            assert [_step(x, key).status_code for x in (a, b, a)] == [200, 200, 200]
            refused = _step(b, key)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "run_step_cap"
            _flush(a)
            _flush(b)
            raw = redis.Redis.from_url(REDIS)
            lost = list(raw.scan_iter(f"{prefix}run:*"))
            assert len(lost) == 1 and 0 < raw.pttl(lost[0]) <= 3600 * 1000  # one hash per run, expiring when idle
            raw.delete(*lost)
            raw.close()
            again = _step(a, key)  # re-seeded from the ledger: 3 steps already
            assert again.status_code == 403 and again.json()["error"]["code"] == "run_step_cap"
