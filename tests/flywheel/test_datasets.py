"""Datasets: filtered, deduplicated, reproducibly split, versioned, exported as valid JSONL, imported."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from interlock.cli.main import app as cli
from interlock.flywheel import datasets as ds
from interlock.flywheel.examples import prompt_hash
from interlock.store.flywheel_queries import CaptureRecord, FeedbackRecord
from interlock.store.sqlite import SqliteStore
from tests.flywheel.conftest import Captures, chat


def _capture(rid: str, ts: float, prompt: str, answer: str, *, run_id: str = "", tools: bool = False) -> CaptureRecord:
    request: dict[str, object] = {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
    }
    response: dict[str, object] = {"role": "assistant", "content": answer}
    if tools:
        request["tools"] = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
        response = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}],
        }
    body, reply = json.dumps(request), json.dumps(response)
    return CaptureRecord(
        rid, ts, "key_a", "", "", "", "", run_id, "chat", "echo", "d", "fake", "", body, reply, 1, 1, 1, 1.0,
        prompt_hash(request), len(body) + len(reply),
    )  # fmt: skip


def _feedback(
    subject: str, metric: str, value: float, *, kind: str = "request", demo: str = "", at: float = 1.0
) -> FeedbackRecord:
    return FeedbackRecord(kind, subject, "key_a", metric, value, "", demo, at, "t")  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "db.sqlite")
    s.open_sync()
    try:
        yield s
    finally:
        s.close_sync()


def _messages(example: str) -> list[dict[str, object]]:
    return list(json.loads(example)["messages"])


def test_repeated_prompts_are_dropped_after_normalising_and_a_demonstration_wins() -> None:
    captures = [
        _capture("r1", 1.0, "What is  the capital of France?", "Paris."),
        _capture("r2", 2.0, "what is the capital of france? ", "It is Paris."),
        _capture("r3", 3.0, "Capital of Spain?", "Madrid."),
        _capture("r4", 4.0, "WHAT IS THE CAPITAL OF FRANCE?", "paris"),
    ]
    newest, dropped = ds.select(ds.BuildSpec("d"), captures, [])
    assert [rid for rid, _ in newest] == ["r3", "r4"] and dropped == 2
    demo = [_feedback("r1", "correct", 1.0, demo="Paris is the capital of France.")]
    chosen, _ = ds.select(ds.BuildSpec("d", prefer_demonstrations=True), captures, demo)
    assert [rid for rid, _ in chosen] == ["r1", "r3"]
    assert chosen[0][1]["messages"][-1] == {"role": "assistant", "content": "Paris is the capital of France."}
    ignored, _ = ds.select(ds.BuildSpec("d"), captures, demo)  # not asked to prefer them
    assert [rid for rid, _ in ignored] == ["r3", "r4"]


def test_metric_filters_use_the_latest_feedback_of_the_request_else_its_run() -> None:
    captures = [
        _capture("r1", 1.0, "a", "A"),
        _capture("r2", 2.0, "b", "B", run_id="run-1"),
        _capture("r3", 3.0, "c", "C"),
    ]
    feedback = [
        _feedback("r1", "quality", 0.9, at=1.0),
        _feedback("r1", "quality", 0.2, at=2.0),  # the latest counts
        _feedback("run-1", "quality", 0.8, kind="run"),
        _feedback("r3", "quality", 0.95),
    ]
    spec = ds.BuildSpec("d", metrics=(ds.MetricFilter.parse("quality>=0.8"),))
    kept, _ = ds.select(spec, captures, feedback)
    assert [rid for rid, _ in kept] == ["r2", "r3"]
    assert ds.MetricFilter.parse("correct = true") == ds.MetricFilter("correct", "=", 1.0)
    for bad in ("quality", "quality>>1", "quality>=high"):
        with pytest.raises(ds.DatasetError):
            ds.MetricFilter.parse(bad)


def test_the_split_is_a_hash_of_seed_and_prompt() -> None:
    keys = [f"prompt-{i}" for i in range(2000)]
    first = [ds.split_of(k, 0, 0.2) for k in keys]
    assert first == [ds.split_of(k, 0, 0.2) for k in keys]
    assert 0.17 < first.count("eval") / len(keys) < 0.23
    assert first != [ds.split_of(k, 1, 0.2) for k in keys]
    assert all(ds.split_of(k, 0, 0.0) == "train" for k in keys)


def test_versions_are_immutable_and_an_unchanged_build_makes_none(store: SqliteStore) -> None:
    asyncio.run(store.insert_captures([_capture(f"r{i}", float(i), f"question {i}", f"answer {i}") for i in range(20)]))
    spec = ds.BuildSpec("qa", eval_fraction=0.3, seed=7)
    first = asyncio.run(ds.build(store, spec, "t"))
    assert first.created and first.dataset.version == 1 and first.dataset.train_rows + first.dataset.eval_rows == 20
    again = asyncio.run(ds.build(store, spec, "t"))
    assert not again.created and again.dataset == first.dataset
    rows_v1 = asyncio.run(store.dataset_rows("qa", 1))
    asyncio.run(store.insert_captures([_capture("r99", 99.0, "question 99", "answer 99")]))
    second = asyncio.run(ds.build(store, spec, "t"))
    assert second.created and second.dataset.version == 2
    assert asyncio.run(store.dataset_rows("qa", 1)) == rows_v1  # v1 is untouched
    rows_v2 = asyncio.run(store.dataset_rows("qa", 2))
    same = {r.example: r.split for r in rows_v1}
    assert all(same[r.example] == r.split for r in rows_v2 if r.example in same)  # no prompt changes split
    assert asyncio.run(ds.resolve(store, "qa@1")).version == 1 and asyncio.run(ds.resolve(store, "qa")).version == 2
    with pytest.raises(ds.DatasetError, match="no version 3"):
        asyncio.run(ds.resolve(store, "qa@3"))
    with pytest.raises(ds.DatasetError, match="no capture matches"):
        asyncio.run(ds.build(store, ds.BuildSpec("x", aliases=("nope",)), "t"))


def test_exports_are_valid_jsonl_in_each_format(store: SqliteStore) -> None:
    asyncio.run(
        store.insert_captures([_capture("r1", 1.0, "look it up", "", tools=True), _capture("r2", 2.0, "hi", "Hello!")])
    )
    asyncio.run(ds.build(store, ds.BuildSpec("t", eval_fraction=0.0), "t"))
    rows = asyncio.run(store.dataset_rows("t", 1))
    openai = [json.loads(line) for line in ds.export_lines(rows, "openai")]
    assert openai[0]["tools"][0]["function"]["name"] == "lookup"
    call = openai[0]["messages"][-1]["tool_calls"][0]
    assert call["function"]["arguments"] == '{"q": 1}' and "content" not in openai[0]["messages"][-1]
    assert openai[1] == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello!"},
        ]
    }
    axolotl = [json.loads(line) for line in ds.export_lines(rows, "axolotl")]
    last = axolotl[0]["messages"][-1]
    assert last["content"] == "" and last["tool_calls"][0]["function"]["arguments"] == {"q": 1}
    assert all(isinstance(m["content"], str) for ex in axolotl for m in ex["messages"])


def test_import_checks_each_line_and_drops_repeats(tmp_path: Path, store: SqliteStore) -> None:
    good = [
        {"messages": [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}]},
        {"messages": [{"role": "user", "content": "PING"}, {"role": "assistant", "content": "pong!"}]},
        {"messages": [{"role": "user", "content": "2+2"}, {"role": "assistant", "content": "4"}]},
    ]
    examples = ds.parse_jsonl([json.dumps(e) for e in good] + [""])
    saved = asyncio.run(ds.import_examples(store, "imp", examples, "t", eval_fraction=0.0))
    assert saved.created and saved.duplicates == 1 and saved.dataset.train_rows == 2
    cases = [
        (["{not json"], "line 1: not JSON"),
        ([json.dumps(good[0]), json.dumps({"messages": [{"role": "user", "content": "x"}]})], "line 2"),
        (
            [json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]})],
            "last message",
        ),
        (
            [json.dumps({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]})],
            "role",
        ),
        ([], "no examples"),
    ]
    for lines, words in cases:
        with pytest.raises(ds.DatasetError, match=words):
            ds.parse_jsonl(lines)


def test_the_cli_builds_from_captures_and_feedback_then_exports_imports_lists_and_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: TestClient, captures: Captures
) -> None:
    good = [chat(client, f"translate word {i}") for i in range(6)]
    bad = chat(client, "translate nothing")
    repeat = chat(client, "TRANSLATE   word 0")  # a repeat of the first prompt, newer but without a demonstration
    for rid in [*good, repeat]:
        assert (
            client.post("/v1/feedback", json={"request_id": rid, "metric": "correct", "value": True}).status_code == 201
        )
    body = {"request_id": good[0], "metric": "quality", "value": 1, "demonstration": "mot 0"}
    assert client.post("/v1/feedback", json=body).status_code == 201
    assert client.post("/v1/feedback", json={"request_id": bad, "metric": "correct", "value": False}).status_code == 201
    assert len(captures()) == 8
    monkeypatch.setenv("INTERLOCK_CONFIG", str(tmp_path / "interlock.toml"))
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    args = ["datasets", "create", "words", "--alias", "echo", "--since", "1d", "--metric", "correct>=1"]
    out = runner.invoke(cli, [*args, "--prefer-demonstrations", "--eval-fraction", "0.5", "--seed", "3"])
    assert out.exit_code == 0, out.output
    assert "Created words@1" in out.output and "1 repeated prompts dropped" in out.output
    out = runner.invoke(cli, [*args, "--prefer-demonstrations", "--eval-fraction", "0.5", "--seed", "3"])
    assert "Unchanged" in out.output and "words@1" in out.output
    target = tmp_path / "words.jsonl"
    out = runner.invoke(
        cli, ["datasets", "export", "words@1", "--format", "openai", "--split", "all", "-o", str(target)]
    )
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(lines) == 6
    answers = {ex["messages"][0]["content"]: ex["messages"][-1]["content"] for ex in lines}
    assert answers["translate word 0"] == "mot 0"  # the demonstration, not the capture's answer
    assert answers["translate word 3"] == "echo: translate word 3"
    out = runner.invoke(cli, ["datasets", "export", "words", "--format", "axolotl"])
    assert out.exit_code == 0 and "type: chat_template" in out.output
    out = runner.invoke(cli, ["datasets", "import", "copy", str(target), "--eval-fraction", "0"])
    assert out.exit_code == 0 and "Created copy@1: 6 train and 0 eval" in out.output, out.output
    out = runner.invoke(cli, ["datasets", "list"])
    assert out.exit_code == 0 and "words" in out.output and "copy" in out.output
    out = runner.invoke(cli, ["datasets", "show", "words@1"])
    assert out.exit_code == 0 and '"metrics": ["correct>=1"]' in out.output
    out = runner.invoke(cli, ["datasets", "show", "nope"])
    assert out.exit_code == 1 and "no dataset 'nope'" in out.output
    out = runner.invoke(cli, ["datasets", "export", "words", "--format", "csv"])
    assert out.exit_code == 2
