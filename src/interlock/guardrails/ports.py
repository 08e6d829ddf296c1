"""What the guardrail hook needs of the parts around it: scanners per policy, and a place to count verdicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from interlock.guardrails.findings import Detector, Finding
from interlock.guardrails.policy import Effective
from interlock.guardrails.scanner import Prefiltered


class TextScanner(Protocol):
    """What the hook needs of a scanner: sorted, non-overlapping findings, and the detectors behind them."""

    @property
    def detectors(self) -> tuple[Detector, ...]: ...

    def scan(self, text: str) -> list[Finding]: ...


def prefilter(scanner: TextScanner, policy: Effective) -> Callable[[str], bool] | None:
    """A cheap check that a word could start an entity the output policy acts on (None: cannot tell)."""
    relevant = [d for d in scanner.detectors if any(policy.output_action(e) is not None for e in d.entities)]
    if not all(isinstance(d, Prefiltered) for d in relevant):
        return None
    checks = [d.could_match for d in relevant if isinstance(d, Prefiltered)]
    return lambda text: any(check(text) for check in checks)


class Scanners(Protocol):
    """The scanners for one effective policy (its custom patterns join the configured detectors)."""

    def content(self, policy: Effective) -> TextScanner: ...
    def output(self, policy: Effective) -> TextScanner: ...
    def untrusted(self) -> TextScanner | None: ...


class Observer(Protocol):
    """Where verdicts are counted (metrics)."""

    def verdict(self, guardrail: str, direction: str, entity: str, action: str, count: int) -> None: ...
