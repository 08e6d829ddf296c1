"""The bootstrap intervals and the deterministic checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interlock.flywheel.checks import Answer, CheckError, parse_check
from interlock.flywheel.stats import bootstrap, paired_difference


def test_bootstrap_interval_of_a_known_proportion() -> None:
    scores = [1.0] * 60 + [0.0] * 40
    ci = bootstrap(scores, seed=1)
    assert ci.mean == pytest.approx(0.6) and ci.n == 100
    # the normal approximation: 0.6 ± 1.96 * sqrt(0.24 / 100) = [0.504, 0.696]
    assert ci.low == pytest.approx(0.504, abs=0.025) and ci.high == pytest.approx(0.696, abs=0.025)
    assert bootstrap(scores, seed=1) == ci  # seeded: the same report every time
    assert bootstrap([1.0] * 10).low == 1.0 and bootstrap([0.5]).high == 0.5
    assert bootstrap([]).n == 0 and bootstrap([]).show() == "-"
    wider = bootstrap(scores[::10], seed=1)  # ten items: a wider interval
    assert wider.high - wider.low > ci.high - ci.low


def test_paired_difference_resamples_items_together() -> None:
    a = [0.0, 1.0] * 50
    b = [1.0, 1.0] * 50
    d = paired_difference(a, b, seed=0)
    assert d.mean == pytest.approx(0.5) and 0.35 < d.low < 0.5 < d.high < 0.65
    same = paired_difference(a, a)
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 0.0])


def test_each_check(tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps({"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}})
    )
    expected = Answer('{"date": "2026-01-02", "amount": 12.5, "currency": "EUR"}')
    got = Answer('```json\n{"date": "2026-01-02", "amount": 12.5, "currency": "USD"}\n```')
    assert parse_check("exact").score(Answer(" Paris "), Answer("Paris")) == 1.0
    assert parse_check("exact").score(Answer("paris"), Answer("Paris")) == 0.0
    assert parse_check("contains").score(Answer("It is Paris."), Answer("Paris")) == 1.0
    assert parse_check(r"regex:^\d{4}-\d{2}$").score(Answer("2026-01"), Answer("")) == 1.0
    assert parse_check("json").score(got, expected) == 1.0 and parse_check("json").score(Answer("{x"), expected) == 0.0
    assert parse_check(f"json_schema:{schema}").score(got, expected) == 1.0
    assert parse_check(f"json_schema:{schema}").score(Answer('{"amount": "12"}'), expected) == 0.0
    assert parse_check("fields:date,amount,currency").score(got, expected) == pytest.approx(2 / 3)
    assert parse_check("fields").score(got, expected) == pytest.approx(2 / 3)
    assert parse_check("fields:date").score(Answer("not json"), expected) == 0.0
    call = {"name": "lookup", "arguments": '{"q": 1, "r": [2]}'}
    same = Answer("", ({"name": "lookup", "arguments": '{"r": [2], "q": 1}'},))
    assert parse_check("tool_call").score(same, Answer("", (call,))) == 1.0
    assert (
        parse_check("tool_call").score(Answer("", ({"name": "other", "arguments": "{}"},)), Answer("", (call,))) == 0.0
    )
    assert parse_check("tool_call").score(Answer("text"), Answer("", (call,))) == 0.0


@pytest.mark.parametrize(
    ("text", "words"),
    [("fuzzy", "use one of"), ("regex:(", "not a valid regular expression"), ("regex", "give a pattern"),
     ("json_schema:/nope.json", "cannot read"), ("exact:x", "takes no argument")],
)  # fmt: skip
def test_bad_checks_are_refused(text: str, words: str) -> None:
    with pytest.raises(CheckError, match=words):
        parse_check(text)
