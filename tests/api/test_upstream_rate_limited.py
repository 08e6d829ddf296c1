"""An upstream's own 429 is told apart from the gateway's limiter: code `upstream_rate_limited`."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import load_settings
from tests.conftest import ADMIN_KEY

CONFIG = """
[routing]
retries = 0

[models.busy]
provider = "openai_compatible"
base_url = "{stub}/v1"
model = "stub-429"
price_input_per_mtok = 1
price_output_per_mtok = 1
"""


def test_an_upstream_429_has_its_own_code_and_retry_after(tmp_path: Path, stub_upstream: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(stub=stub_upstream))
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as app:
        body = {"model": "busy", "messages": [{"role": "user", "content": "hi"}]}
        r = app.post("/v1/chat/completions", json=body)
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "upstream_rate_limited"
        assert r.headers["retry-after"] == "7"
        assert r.headers["x-interlock-attempts"] == "1"
