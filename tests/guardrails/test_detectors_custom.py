"""CustomDetector: org regexes and keyword lists, validated when configured."""

from __future__ import annotations

import pytest

from interlock.guardrails.detectors.custom import MAX_PATTERN_LENGTH, CustomDetector, CustomPatternError


def spans(detector: CustomDetector, text: str) -> list[tuple[str, str]]:
    return [(f.entity, text[f.start : f.end]) for f in detector.scan(text)]


def test_patterns_and_whole_word_case_insensitive_keywords() -> None:
    detector = CustomDetector(
        patterns={"CUSTOMER_ID": r"\bCUST-\d{6}\b"},
        keywords={"PROJECT": ["Blue Falcon", "nightjar"]},
    )
    text = "CUST-123456 asked about BLUE FALCON; nightjars and Nightjar. CUST-12345 is short."
    assert spans(detector, text) == [
        ("CUSTOMER_ID", "CUST-123456"),
        ("PROJECT", "BLUE FALCON"),
        ("PROJECT", "Nightjar"),
    ]
    assert detector.entities == frozenset({"CUSTOMER_ID", "PROJECT"})


def test_keywords_with_regex_characters_are_literal() -> None:
    detector = CustomDetector(keywords={"CODE_NAME": ["c++ core", "a.b"]})
    assert spans(detector, "we ship c++ core and a.b, not axb") == [("CODE_NAME", "c++ core"), ("CODE_NAME", "a.b")]


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(unclosed", "does not compile"),
        ("a*", "empty string"),
        ("x" * (MAX_PATTERN_LENGTH + 1), "limit"),
        (r"(a|aa)+$", "backtracks catastrophically"),
        (r"(a+)+$", "backtracks catastrophically"),
        (r"^(\w+\s?)+$", "backtracks catastrophically"),
        (r"(x|xx)+y", "backtracks catastrophically"),
    ],
)
def test_bad_patterns_are_refused_with_a_clear_error(pattern: str, reason: str) -> None:
    with pytest.raises(CustomPatternError, match=reason) as info:
        CustomDetector(patterns={"ORDER_REF": pattern})
    assert "ORDER_REF" in str(info.value)


def test_ordinary_patterns_are_accepted() -> None:
    for pattern in (
        r"\bCUST-\d{6}\b",
        r"(?i)project\s+(falcon|heron)",
        r"[A-Z]{2}\d{2}(?: ?\d{4}){3}",
        r"\p{Lu}{3}-\d+",
    ):
        CustomDetector(patterns={"ID": pattern})


def test_bad_entity_names_and_empty_keyword_lists() -> None:
    with pytest.raises(CustomPatternError, match="upper case"):
        CustomDetector(patterns={"customer id": "x"})
    with pytest.raises(CustomPatternError, match="empty"):
        CustomDetector(keywords={"PROJECT": ["  "]})


def test_repr_names_entities_not_patterns() -> None:
    detector = CustomDetector(keywords={"CLIENT": ["Acme Secret Corp"]})
    assert "Acme" not in repr(detector)
    assert "CLIENT" in repr(detector)
    assert detector.scan("") == []
