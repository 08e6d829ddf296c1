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
