"""A router alias: the learned router picks the cheap or the strong model per prompt, and says why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from interlock.app import create_app
from interlock.cli.router import app as router_cli
from interlock.settings import ConfigError, load_settings
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.model  # trains the router on the packaged models' embeddings


def train_router(tmp_path: Path) -> Path:
    """A router trained on a tiny file: integrals need the strong model, fruit questions do not."""
    rows = ["prompt,cheap-model,strong-model"]
    for i in range(40):
        rows.append(f'"Integrate x^{i} dx from 0 to {i + 1}",False,True')
        rows.append(f'"Name a fruit that is colour number {i}",True,True')
    data = tmp_path / "data.csv"
    data.write_text("\n".join(rows) + "\n")
    router = tmp_path / "router.json"
    result = CliRunner().invoke(
        router_cli, ["train", "--input", str(data), "--output", str(router), "--max-train", "80"]
    )
    assert result.exit_code == 0, result.output
    return router


CONFIG = """
[plugins]
modules = ["interlock.testing.fake"]  # the fake provider is not a production entry point

[models.cheap]
provider = "fake"
tags = ["local"]
price_input_per_mtok = 0
price_output_per_mtok = 0

[models.strong]
provider = "fake"
price_input_per_mtok = 10
price_output_per_mtok = 30

[models.auto.router]
file = "{router}"
threshold = {threshold}
models = {{ "cheap-model" = "cheap", "strong-model" = "strong" }}
"""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TestClient]:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(router=train_router(tmp_path), threshold=0.5))
    settings = load_settings(cfg, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


def _ask(app: TestClient, prompt: str, headers: dict[str, str] | None = None) -> object:
    return app.post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": prompt}]},
        headers=headers,
    )


def test_router_picks_per_prompt_and_explains(app: TestClient) -> None:
    hard = _ask(app, "Integrate x^7 dx from 0 to 3")
    easy = _ask(app, "Name a fruit that is colour number 7")
    assert hard.headers["x-interlock-model"] == "strong"  # type: ignore[attr-defined]
    assert easy.headers["x-interlock-model"] == "cheap"  # type: ignore[attr-defined]
    route = hard.headers["x-interlock-route"]  # type: ignore[attr-defined]
    assert route.startswith("model=strong; score=") and "threshold=0.5000" in route and "reason=" in route
    models = {m["id"]: m for m in app.get("/v1/models").json()["data"]}
    assert models["auto"]["router"] == ["cheap", "strong"]


def test_residency_overrides_the_router(app: TestClient) -> None:
    r = _ask(app, "Integrate x^7 dx from 0 to 3", {"x-interlock-residency": "restricted"})
    assert r.status_code == 200 and r.headers["x-interlock-model"] == "cheap"  # type: ignore[attr-defined]
    assert "data residency" in r.headers["x-interlock-route"]  # type: ignore[attr-defined]


def test_bad_router_config_fails_at_start(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(router=tmp_path / "missing.json", threshold=0.5))
    with pytest.raises(ConfigError, match=r"models\.auto\.router\.file: cannot load"):
        create_app(load_settings(cfg, {}))
    router = train_router(tmp_path)
    cfg.write_text(
        CONFIG.format(router=router, threshold=0.5).replace('"strong-model" = "strong"', '"strong-model" = "nope"')
    )
    with pytest.raises(ConfigError, match="nope"):
        create_app(load_settings(cfg, {}))


def _key(app: TestClient, models: list[str]) -> dict[str, str]:
    r = app.post("/admin/keys", json={"name": "scoped", "models": models})
    assert r.status_code in (200, 201), r.text
    return {"authorization": f"Bearer {r.json()['key']}"}


def test_a_key_scoped_to_the_router_alias_reaches_its_targets_on_its_behalf(app: TestClient) -> None:
    """The router alias is the unit of permission: its targets need not be in the key's scope."""
    auto_only = _key(app, ["auto"])
    r = _ask(app, "Integrate x^7 dx from 0 to 3", auto_only)
    assert r.status_code == 200 and r.headers["x-interlock-model"] == "strong"  # type: ignore[attr-defined]
    direct = app.post(
        "/v1/chat/completions",
        json={"model": "strong", "messages": [{"role": "user", "content": "hi"}]},
        headers=auto_only,
    )
    assert direct.status_code == 403 and direct.json()["error"]["code"] == "model_not_allowed"


def test_a_key_allowed_only_a_target_may_not_call_the_router_alias(app: TestClient) -> None:
    cheap_only = _key(app, ["cheap"])
    r = _ask(app, "Name a fruit that is colour number 7", cheap_only)
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"  # type: ignore[attr-defined]


def test_the_budget_reservation_covers_the_most_expensive_target(app: TestClient) -> None:
    """An easy prompt goes to the free model, yet admission reserves at the strong model's price."""
    r = app.post("/admin/keys", json={"name": "budgeted", "models": ["auto"]})
    key_id, headers = r.json()["id"], {"authorization": f"Bearer {r.json()['key']}"}
    budget = {"scope": "key", "scope_id": key_id, "period": "total", "limit_usd": "0.000001"}
    assert app.put("/admin/budgets", json=budget).status_code == 200
    refused = _ask(app, "Name a fruit that is colour number 7", headers)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"  # type: ignore[attr-defined]
    budget["limit_usd"] = "1"
    assert app.put("/admin/budgets", json=budget).status_code == 200
    served = _ask(app, "Name a fruit that is colour number 7", headers)
    assert served.status_code == 200 and served.headers["x-interlock-model"] == "cheap"  # type: ignore[attr-defined]
