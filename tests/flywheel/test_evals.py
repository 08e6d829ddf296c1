"""Evals: the runner's scoring, judge and storage (against a scripted HTTP model), and `interlock eval` through a
real `interlock serve`, with the eval's requests in that gateway's ledger."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from interlock.cli.main import app as cli
from interlock.flywheel import datasets as ds
from interlock.flywheel import evals as ev
from interlock.flywheel.checks import parse_check
from interlock.store.sqlite import SqliteStore
from tests.conftest import ADMIN_KEY, FAKE_CONFIG
from tests.e2e.conftest import start_server


def _examples(n: int) -> list[dict[str, object]]:
    return [
        {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}
        for i in range(n)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "db.sqlite")
    s.open_sync()
    try:
        yield s
    finally:
        s.close_sync()


def _scripted(request: httpx.Request) -> httpx.Response:
    """Model `good` answers `answer N`, `bad` answers `answer N` for even N only, `down` fails; the judge passes
    a candidate equal to the reference."""
    body = json.loads(request.content)
    prompt = body["messages"][-1]["content"]
    if body["model"] == "down":
        return httpx.Response(502, json={"error": {"message": "upstream is down"}})
    if body["model"] == "judge":
        reference = prompt.split("Reference answer:\n")[1].split("\n\n")[0]
        candidate = prompt.split("Candidate answer:\n")[1]
        content = "PASS" if candidate == reference else "FAIL"
    else:
        n = int(prompt.split()[-1])
        content = f"answer {n}" if body["model"] == "good" or n % 2 == 0 else "no idea"
    assert body["temperature"] == 0
    return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": content}}]})


def test_the_runner_scores_judges_compares_and_stores(store: SqliteStore) -> None:
    saved = asyncio.run(
        ds.import_examples(store, "qa", ds.parse_jsonl(json.dumps(e) for e in _examples(40)), "t", eval_fraction=0.5)
    )
    d = saved.dataset
    assert d.eval_rows > 5
    evens = sum(
        1
        for r in asyncio.run(store.dataset_rows("qa", 1, "eval"))
        if int(json.loads(r.example)["messages"][0]["content"].split()[-1]) % 2 == 0
    )
    plan = ev.EvalPlan(
        d, ("good", "bad"), (parse_check("exact"), parse_check("contains")), judge="judge", concurrency=3
    )
    done: list[int] = []

    async def go() -> tuple[object, list[object]]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(_scripted), base_url="http://gw") as client:
            return await ev.run(store, plan, client, "tester", done.append)  # type: ignore[return-value]

    record, results = asyncio.run(go())
    assert sum(done) == 2 * d.eval_rows and len(results) == 2 * d.eval_rows
    summary = json.loads(record.summary)  # type: ignore[attr-defined]
    good, bad = summary["models"]["good"]["checks"], summary["models"]["bad"]["checks"]
    assert good["exact"]["mean"] == 1.0 and good["judge"]["mean"] == 1.0
    assert bad["exact"]["mean"] == pytest.approx(evens / d.eval_rows) and bad["judge"]["mean"] == bad["exact"]["mean"]
    assert bad["exact"]["low"] <= bad["exact"]["mean"] <= bad["exact"]["high"]
    diff = summary["difference"]["exact"]
    assert diff["mean"] == pytest.approx(bad["exact"]["mean"] - 1.0) and diff["high"] <= 0
    assert [e.id for e in asyncio.run(store.list_evals())] == [record.id]  # type: ignore[attr-defined]
    assert len(asyncio.run(store.eval_results(record.id))) == 2 * d.eval_rows  # type: ignore[attr-defined]


def test_a_failing_model_scores_zero_and_its_errors_are_counted(store: SqliteStore) -> None:
    d = asyncio.run(
        ds.import_examples(store, "qa", ds.parse_jsonl(json.dumps(e) for e in _examples(10)), "t", eval_fraction=0.5)
    ).dataset
    plan = ev.EvalPlan(d, ("down",), (parse_check("exact"),))

    async def go() -> tuple[object, list[ev.EvalResult]]:  # type: ignore[name-defined]
        async with httpx.AsyncClient(transport=httpx.MockTransport(_scripted), base_url="http://gw") as client:
            return await ev.run(store, plan, client, "t")

    record, results = asyncio.run(go())
    summary = json.loads(record.summary)  # type: ignore[attr-defined]
    assert (
        summary["models"]["down"]["errors"] == d.eval_rows and summary["models"]["down"]["checks"]["exact"]["mean"] == 0
    )
    assert all("upstream is down" in r.error for r in results)
    with pytest.raises(ev.EvalError, match="one --model"):
        asyncio.run(ev.run(store, ev.EvalPlan(d, (), (parse_check("exact"),)), httpx.AsyncClient(), "t"))
    none = asyncio.run(
        ds.import_examples(store, "all-train", ds.parse_jsonl([json.dumps(_examples(1)[0])]), "t", eval_fraction=0.0)
    ).dataset
    with pytest.raises(ev.EvalError, match="no eval split"):
        asyncio.run(ev.run(store, ev.EvalPlan(none, ("good",), (parse_check("exact"),)), httpx.AsyncClient(), "t"))


DOWN = """
[guardrails]
enabled = false  # a faster start; the guardrails are not what this test is about

[models.down]
provider = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"
model = "nothing"
price_input_per_mtok = 1
price_output_per_mtok = 1
"""


def test_interlock_eval_runs_through_a_real_gateway_and_its_cost_is_in_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server(tmp_path, FAKE_CONFIG + DOWN)
    try:
        monkeypatch.setenv("INTERLOCK_CONFIG", str(tmp_path / "config0.toml"))
        monkeypatch.setenv("INTERLOCK_HOME", str(server.home))
        monkeypatch.setenv("COLUMNS", "250")
        # the echo model answers "echo: PROMPT": the even examples expect exactly that
        lines = [
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"q {i}"},
                        {"role": "assistant", "content": f"echo: q {i}" if i % 2 == 0 else "x"},
                    ]
                }
            )
            for i in range(16)
        ]
        data = tmp_path / "qa.jsonl"
        data.write_text("\n".join(lines) + "\n")
        runner = CliRunner()
        out = runner.invoke(cli, ["datasets", "import", "qa", str(data), "--eval-fraction", "0.5", "--seed", "1"])
        assert out.exit_code == 0, out.output
        db = sqlite3.connect(server.home / "interlock.db")
        try:
            rows = [json.loads(e) for (e,) in db.execute("SELECT example FROM dataset_rows WHERE split = 'eval'")]
        finally:
            db.close()
        n = len(rows)
        assert n >= 3
        hits = sum(1 for r in rows if r["messages"][-1]["content"].startswith("echo:"))
        args = ["eval", "qa", "--model", "echo", "--model", "down", "--check", "exact", "--check", "contains"]
        out = runner.invoke(cli, [*args, "--base-url", server.url + "/v1", "--key", ADMIN_KEY, "--concurrency", "2"])
        assert out.exit_code == 0, out.output
        assert f"{n} eval examples" in out.output and "down - echo" in out.output  # second minus first
        assert f"{hits / n:.3f} [" in out.output and f"{-hits / n:+.3f} [" in out.output  # echo's score; the difference
        assert "0.000 [0.000, 0.000]" in out.output  # the model that is down
        out = runner.invoke(cli, ["evals", "list"])
        assert out.exit_code == 0 and "qa@1" in out.output and "echo, down" in out.output
        eval_id = out.output.split("eval_")[1].split()[0].rstrip("│ ")
        out = runner.invoke(cli, ["evals", "show", "eval_" + eval_id, "--answers"])
        assert out.exit_code == 0 and "echo: q" in out.output and "HTTP 503" in out.output, out.output
        # the eval's requests went through the gateway: one ledger row each, priced
        deadline = time.monotonic() + 10
        while True:
            db = sqlite3.connect(server.home / "interlock.db")
            try:
                ledger = dict(
                    db.execute(
                        "SELECT alias, count(*) FROM usage WHERE cost_micros > 0 OR alias = 'down' GROUP BY alias"
                    ).fetchall()
                )
            finally:
                db.close()
            if ledger.get("echo", 0) >= n or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert ledger.get("echo") == n and ledger.get("down") == n
    finally:
        server.proc.terminate()
        server.proc.wait(15)
