"""Loading labelled prompts from RouteLLM CSVs and JSONL."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from interlock.routing.router.data import DataError, load_excluded, load_labelled, load_prompts, parse_score


def test_parse_score() -> None:
    assert parse_score("True") == 1.0
    assert parse_score("false") == 0.0
    assert parse_score(True) == 1.0
    assert parse_score("0.25") == 0.25
    assert math.isnan(parse_score(""))
    with pytest.raises(DataError):
        parse_score("1.5")
    with pytest.raises(DataError):
        parse_score("maybe")


def test_csv_and_jsonl_with_exclusions(tmp_path: Path) -> None:
    csv_file = tmp_path / "a.csv"
    csv_file.write_text('prompt,weak,strong\n"What is\n2+2?",True,True\nhard,False,0.5\nleaked,True,False\n')
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text(json.dumps({"prompt": "extra", "scores": {"strong": 1, "mid": 0.5}}) + "\n")
    excluded = tmp_path / "x.jsonl"
    excluded.write_text(json.dumps({"eval_prompt": "leaked", "train_prompt": "other", "eval_idx": 3}) + "\n")
    data = load_labelled([csv_file, jsonl], load_excluded(excluded))
    assert data.prompts == ("What is\n2+2?", "hard", "extra")
    assert data.models == ("weak", "strong", "mid")
    assert data.column("strong").tolist() == [1.0, 0.5, 1.0]
    assert math.isnan(data.scores[2, 0])
    both = data.complete_for(["weak", "strong"])
    assert both.prompts == ("What is\n2+2?", "hard")
    assert load_prompts(csv_file)[1] == "hard"


def test_bad_jsonl_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:1"):
        load_labelled([bad])


def test_conversations_and_one_outcome_per_row(tmp_path: Path) -> None:
    """Feedback-style rows: one answer each, merged by text; conversations read as the router reads them."""
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    chat += [
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": [{"type": "text", "text": "sum 2+2"}]},
    ]
    rows = [
        {"messages": chat, "model": "cheap", "score": 0, "group": "support"},
        {"messages": chat, "model": "strong", "score": 1},
        {"messages": chat, "model": "cheap", "score": 1},  # a second outcome of the same model: averaged
        {"prompt": "plain", "scores": {"cheap": True, "strong": True}, "group": "docs"},
    ]
    path = tmp_path / "feedback.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_labelled([path])
    assert data.prompts == ("[user] hi\n[assistant] hello\nsum 2+2", "plain")
    assert data.models == ("cheap", "strong")
    assert data.scores.tolist() == [[0.5, 1.0], [1.0, 1.0]]
    assert data.groups == ("support", "docs")
    assert data.subset([1]).groups == ("docs",)
    assert load_prompts(path)[0] == data.prompts[0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": chat, "model": "cheap"}) + "\n")
    with pytest.raises(DataError, match="'model': str, 'score'"):
        load_labelled([bad])
    bad.write_text("not json\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: not JSON"):
        load_prompts(bad)
