"""Scanner: overlap resolution, the fast path, and the default detector set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from interlock.guardrails.findings import Finding
from interlock.guardrails.scanner import DetectorOptions, Scanner, build_detectors, build_scanner, resolve_overlaps


class Fixed:
    """A detector that reports fixed findings and counts its scans."""

    def __init__(self, name: str, findings: list[Finding], could: bool | None = None) -> None:
        self._name, self._findings, self._could, self.scans = name, findings, could, 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def entities(self) -> frozenset[str]:
        return frozenset(f.entity for f in self._findings)

    def scan(self, text: str) -> list[Finding]:
        self.scans += 1
        return list(self._findings)


class Gated(Fixed):
    def could_match(self, text: str) -> bool:
        return bool(self._could)


def f(entity: str, start: int, end: int, score: float) -> Finding:
    return Finding(entity, start, end, score, "t")


def test_overlaps_keep_higher_score_then_longer_span_sorted_by_start() -> None:
    findings = [
        f("PHONE_NUMBER", 10, 24, 0.6),
        f("CREDIT_CARD", 8, 27, 0.95),  # beats the phone inside it
        f("A", 40, 45, 0.5),
        f("B", 40, 50, 0.5),  # same score, longer: wins
        f("C", 0, 5, 0.3),
        f("D", 5, 8, 0.3),  # touching, not overlapping
    ]
    assert resolve_overlaps(findings) == [
        f("C", 0, 5, 0.3),
        f("D", 5, 8, 0.3),
        f("CREDIT_CARD", 8, 27, 0.95),
        f("B", 40, 50, 0.5),
    ]


def test_fast_path_skips_detectors_that_cannot_match() -> None:
    gated = Gated("gated", [f("X", 0, 1, 0.9)], could=False)
    plain = Fixed("plain", [f("Y", 2, 3, 0.9)])
    assert Scanner([gated, plain]).scan("abc") == [f("Y", 2, 3, 0.9)]
    assert gated.scans == 0 and plain.scans == 1


def test_a_scanner_rules_a_text_out_only_when_every_detector_can() -> None:
    no, yes = Gated("no", [f("X", 0, 1, 0.9)], could=False), Gated("yes", [f("Y", 0, 1, 0.9)], could=True)
    both = Scanner([no, yes]).could_match
    assert both is not None and both("abc")
    neither = Scanner([no, Gated("no2", [f("Z", 0, 1, 0.9)], could=False)]).could_match
    assert neither is not None and not neither("abc")
    assert Scanner([no, Fixed("plain", [f("Y", 2, 3, 0.9)])]).could_match is None  # plain has no check
    secrets = build_scanner(DetectorOptions(pii=False)).could_match
    assert secrets is not None and not secrets("Hello there") and secrets("sk-proj-abc")


def test_duplicate_detector_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        Scanner([Fixed("a", []), Fixed("a", [])])


def test_default_set_end_to_end() -> None:
    scanner = build_scanner()
    assert {d.name for d in scanner.detectors} == {"pii", "secrets"}
    text = "Card 4111 1111 1111 1111, key AKIAIOSFODNN7EXAMPLE, mail ops@example.org"
    assert [(x.entity, text[x.start : x.end]) for x in scanner.scan(text)] == [
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("SECRET_AWS_KEY", "AKIAIOSFODNN7EXAMPLE"),
        ("EMAIL_ADDRESS", "ops@example.org"),
    ]
    # No digit, '@', key prefix or key word: every default detector is skipped.
    assert all(not d.could_match("Tell me a story about a brave little boat.") for d in scanner.detectors)  # type: ignore[attr-defined]


def test_options_build_what_they_name() -> None:
    options = DetectorOptions(pii=False, injection=True, custom_keywords={"PROJECT": ("nightjar",)})
    assert [d.name for d in build_detectors(options)] == ["secrets", "injection", "custom"]
    with pytest.raises(ValidationError):
        DetectorOptions(unknown=True)  # type: ignore[call-arg]
