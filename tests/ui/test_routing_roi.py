"""The Routing and ROI pages in-process: what the ledger says served each request, and outcomes' ROI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from interlock.app import create_app
from interlock.cli.router import app as router_cli
from interlock.settings import load_settings
from interlock.ui.dashboard import router_targets
from tests.conftest import ADMIN_KEY

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def _chat(client: TestClient, model: str, run: str = "") -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    headers = {**ADMIN, "x-interlock-run-id": run} if run else ADMIN
    assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 200


def test_routing_data_counts_the_serving_model(app_client: TestClient, sign_in: Callable[[str], str]) -> None:
    for model in ("echo", "echo", "echo-remote"):
        _chat(app_client, model)
    bad = {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}
    assert app_client.post("/v1/chat/completions", json=bad, headers=ADMIN).status_code == 404  # never routed
    sign_in(ADMIN_KEY)
    page = app_client.get("/ui/routing")
    assert page.status_code == 200 and 'id="no-routers"' in page.text
    data = app_client.get("/ui/api/routing?days=1").json()
    assert {k: sum(v) for k, v in data["served"].items()} == {"echo": 2, "echo-remote": 1}
    assert data["routers"] == {} and {"asked": "echo", "served": "echo", "requests": 2} in data["routes"]
    assert app_client.get("/ui/api/routing?days=x").status_code == 400


def test_router_targets_come_cheapest_first_from_the_router() -> None:
    class Spec:
        models = {"cheap-model": "cheap", "strong-model": "strong"}

    class Model:
        router = Spec()

    class Router:
        models = ("cheap-model", "strong-model")

    class Route:
        model = Model()
        router = Router()

    class Plain:
        model = type("M", (), {"router": None})()
        router = None

    assert router_targets({"auto": Route(), "echo": Plain()}) == {"auto": ("cheap", "strong")}  # type: ignore[dict-item]


def test_the_roi_page_shows_the_roi_report(app_client: TestClient, sign_in: Callable[[str], str]) -> None:
    _chat(app_client, "echo", run="run-7")
    r = app_client.post("/v1/outcomes", json={"run_id": "run-7", "task_type": "triage", "status": "completed"},
                        headers=ADMIN)  # fmt: skip
    assert r.status_code in (200, 201), r.text
    sign_in(ADMIN_KEY)
    page = app_client.get("/ui/roi").text
    row = page.split('<tr data-group="triage"')[1].split("</tr>")[0]
    assert 'data-field="completed">1<' in row and 'data-field="failed">0<' in row
    report = app_client.get("/admin/roi", headers=ADMIN).json()
    assert report["summary"]["text"] in page
    assert app_client.get("/ui/roi?group=planet").status_code == 400
    assert 'data-group="' in app_client.get("/ui/roi?group=key&days=7").text


@pytest.mark.model
@pytest.mark.slow
def test_a_learned_routers_decisions_and_strong_share(tmp_path: Path) -> None:
    """A real router alias (trained here on static embeddings): the chart counts what it chose, per target."""
    rows = ["prompt,cheap-model,strong-model"]
    for i in range(40):
        rows.append(f'"Integrate x^{i} dx from 0 to {i + 1}",False,True')
        rows.append(f'"Name a fruit that is colour number {i}",True,True')
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    router = tmp_path / "router.json"
    args = ["train", "-i", str(tmp_path / "data.csv"), "-o", str(router), "--embedder", "all-MiniLM-L6-v2/static"]
    trained = CliRunner().invoke(router_cli, args)
    assert trained.exit_code == 0, trained.output
    cfg = tmp_path / "c.toml"
    cfg.write_text(ROUTER_CONFIG.format(router=router))
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        served = []
        for prompt in ("Integrate x^3 dx from 0 to 2", "Name a fruit that is colour number 3", "Name a fruit, 5"):
            body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
            r = client.post("/v1/chat/completions", json=body, headers=ADMIN)
            assert r.status_code == 200
            served.append(r.headers["x-interlock-model"])
        assert "strong" in served and "cheap" in served
        assert client.post("/ui/signin", data={"key": ADMIN_KEY}, follow_redirects=False).status_code == 303
        assert 'data-router="auto"' in client.get("/ui/routing").text
        auto = client.get("/ui/api/routing").json()["routers"]["auto"]
        assert auto["targets"] == ["cheap", "strong"] and auto["cheap"] == "cheap"
        assert {t: sum(v) for t, v in auto["by_target"].items()} == {m: served.count(m) for m in ("cheap", "strong")}
        assert auto["share"] == round(served.count("strong") / 3, 4) and auto["requests"] == 3


ROUTER_CONFIG = """
[plugins]
modules = ["interlock.testing.fake"]

[models.cheap]
provider = "fake"
price_input_per_mtok = 0
price_output_per_mtok = 0

[models.strong]
provider = "fake"
price_input_per_mtok = 10
price_output_per_mtok = 30

[models.auto.router]
file = "{router}"
threshold = 0.5
models = {{ "cheap-model" = "cheap", "strong-model" = "strong" }}
"""
