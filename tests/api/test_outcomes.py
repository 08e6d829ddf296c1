"""POST /v1/outcomes and GET /admin/roi: outcomes of a key's own requests and runs, priced against labour."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.settings import load_settings
from interlock.store.records import UsageRecord
from tests.conftest import ADMIN_KEY, FAKE_CONFIG

Ledger = Callable[[], list[UsageRecord]]
ROI = """
[roi.task_types.invoice]
minutes = 12
hourly_usd = 45

[roi.task_types.triage]
minutes = 3
hourly_usd = 30
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The app with two priced task types, authenticated as admin by default."""
    config = tmp_path / "interlock.toml"
    config.write_text(FAKE_CONFIG + ROI)
    settings = load_settings(config, {"INTERLOCK_HOME": str(tmp_path / "home"), "INTERLOCK_ADMIN_KEY": ADMIN_KEY})
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _key(client: TestClient, name: str = "app", **body: object) -> tuple[str, str]:
    r = client.post("/admin/keys", json={"name": name, **body})
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), str(r.json()["key"])


def _chat(client: TestClient, token: str, run: str | None = None, model: str = "echo") -> str:
    """One request; its request id."""
    headers = {**_auth(token), **({"x-interlock-run-id": run} if run else {})}
    body = {"model": model, "messages": [{"role": "user", "content": "sum the invoice lines please"}]}
    r = client.post("/v1/chat/completions", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"]


def _report(client: TestClient, token: str, **body: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = client.post("/v1/outcomes", json=body, headers=_auth(token))
    return r.status_code, r.json()


def test_the_run_id_header_is_recorded_on_every_ledger_row_of_the_run(client: TestClient) -> None:
    _, token = _key(client)
    _chat(client, token, run="run-7")
    _chat(client, token, run="run-7")
    _chat(client, token)
    store = client.app.state.interlock.store  # type: ignore[attr-defined]
    client.portal.call(store.flush)  # type: ignore[union-attr]
    rows = client.portal.call(store.usage_rows)  # type: ignore[union-attr]
    assert sorted(r.run_id for r in rows) == ["", "run-7", "run-7"]


@pytest.mark.parametrize("bad", ["x" * 129, "run 7", "run/7", "run;7"])
def test_a_malformed_run_id_header_is_refused(client: TestClient, bad: str) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    r = client.post("/v1/chat/completions", json=body, headers={"x-interlock-run-id": bad})
    assert r.status_code == 400 and "x-interlock-run-id" in r.json()["error"]["message"]


def test_an_outcome_is_stored_once_per_subject_and_task_type(client: TestClient) -> None:
    _, token = _key(client)
    request_id = _chat(client, token)
    assert _report(client, token, request_id=request_id, task_type="invoice", status="failed") == (
        201,
        {"object": "outcome", "request_id": request_id, "task_type": "invoice", "status": "failed", "created": True},
    )
    code, again = _report(client, token, request_id=request_id, task_type="invoice", status="completed")
    assert code == 200 and again["created"] is False and again["status"] == "completed"
    assert _report(client, token, request_id=request_id, task_type="triage", status="completed")[0] == 201
    roi = client.get("/admin/roi").json()
    by_task = {r["group"]: r for r in roi["data"]}
    assert (by_task["invoice"]["completed"], by_task["invoice"]["failed"]) == (1, 0)  # the latest report won
    assert by_task["triage"]["completed"] == 1


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"task_type": "invoice", "status": "completed"}, "exactly one of request_id and run_id"),
        ({"request_id": "req_1", "run_id": "r", "task_type": "invoice", "status": "completed"}, "exactly one"),
        ({"run_id": "r", "task_type": "invoice", "status": "done"}, "status"),
        ({"run_id": "r", "task_type": "invoice"}, "status"),
        ({"run_id": "r", "task_type": "in voice", "status": "failed"}, "task_type"),
        ({"run_id": "r", "task_type": "payroll", "status": "failed"}, "use one of: invoice, triage"),
        ({"run_id": "r", "task_type": "invoice", "status": "failed", "extra": 1}, "extra"),
        ({"run_id": 7, "task_type": "invoice", "status": "failed"}, "run_id"),
    ],
)
def test_bad_reports_get_a_400_that_says_why(client: TestClient, body: dict, says: str) -> None:  # type: ignore[type-arg]
    _, token = _key(client)
    code, answer = _report(client, token, **body)
    assert code == 400, answer
    assert says in answer["error"]["message"]


def test_a_key_reports_only_on_its_own_requests_and_runs(client: TestClient) -> None:
    _, mine = _key(client)
    _, other = _key(client, "other")
    request_id = _chat(client, mine, run="run-a")
    for body in ({"request_id": request_id}, {"run_id": "run-a"}, {"run_id": "never-sent"}):
        code, answer = _report(client, other, **body, task_type="invoice", status="completed")
        assert code == 404, answer
        assert "no request" in answer["error"]["message"]
    assert _report(client, mine, run_id="run-a", task_type="invoice", status="completed")[0] == 201
    r = client.post(
        "/v1/outcomes",
        json={"run_id": "run-a", "task_type": "invoice", "status": "completed"},
        headers=_auth("sk-il-bogus"),
    )
    assert r.status_code == 401


def test_roi_prices_completed_outcomes_against_their_ai_cost(client: TestClient, tmp_path: Path) -> None:
    team = client.post("/admin/orgs", json={"name": "acme"}).json()["id"]
    team = client.post("/admin/teams", json={"name": "finance", "org_id": team}).json()["id"]
    bot_id, bot = _key(client, "invoice-bot", team_id=team)
    for run in ("r1", "r2", "r3"):
        _chat(client, bot, run=run)
        _chat(client, bot, run=run, model="echo-remote")
    for run, status in (("r1", "completed"), ("r2", "completed"), ("r3", "failed")):
        assert _report(client, bot, run_id=run, task_type="invoice", status=status)[0] == 201
    store = client.app.state.interlock.store  # type: ignore[attr-defined]
    client.portal.call(store.flush)  # type: ignore[union-attr]
    cost = sum(r.cost_micros for r in client.portal.call(store.usage_rows))  # type: ignore[union-attr]
    assert cost > 0

    roi = client.get("/admin/roi").json()
    (row,) = roi["data"]
    assert (row["group"], row["completed"], row["failed"]) == ("invoice", 2, 1)
    assert row["cost_micros"] == cost  # all six requests, the failed run's too
    assert row["cost_per_completed_micros"] == cost // 2
    assert row["labour_hours"] == 0.4  # 2 x 12 minutes
    assert row["labour_value_micros"] == 18_000_000  # 0.4 h x $45
    assert row["roi"] == round((18_000_000 - cost) / cost, 4)
    assert roi["total"]["labour_value_micros"] == 18_000_000 and "ROI" in roi["summary"]["text"]

    by_team = client.get("/admin/roi", params={"group": "team"}).json()["data"]
    assert [(r["group"], r["name"]) for r in by_team] == [(team, "finance")]
    by_key = client.get("/admin/roi", params={"group": "key"}).json()["data"]
    assert [(r["group"], r["name"], r["completed"]) for r in by_key] == [(bot_id, "invoice-bot", 2)]
    assert client.get("/admin/roi", params={"group": "model"}).status_code == 400
    assert client.get("/admin/roi", headers=_auth(bot)).status_code == 403
