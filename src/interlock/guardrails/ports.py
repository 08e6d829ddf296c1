"""What the guardrail hook needs of the parts around it: scanners per policy, and a place to count verdicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from interlock.guardrails.findings import Detector, Finding
from interlock.guardrails.policy import Effective


class TextScanner(Protocol):
    """What the hook needs of a scanner: sorted, non-overlapping findings, the detectors behind them, and a
    cheap check that a text could hold a finding at all (None: cannot tell; see `Scanner`)."""

    @property
    def detectors(self) -> tuple[Detector, ...]: ...

    @property
    def could_match(self) -> Callable[[str], bool] | None: ...

    def scan(self, text: str) -> list[Finding]: ...


class Scanners(Protocol):
    """The scanners for one effective policy (its custom patterns join the configured detectors)."""

    def content(self, policy: Effective) -> TextScanner: ...
    def output(self, policy: Effective) -> TextScanner: ...  # only detectors of types the output policy acts on
    def untrusted(self) -> TextScanner | None: ...


class Observer(Protocol):
    """Where verdicts are counted (metrics)."""

    def verdict(self, guardrail: str, direction: str, entity: str, action: str, count: int) -> None: ...
