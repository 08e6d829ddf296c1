"""What a detector reports: typed spans of sensitive or untrusted content, never copies of it.

A `Finding` names the entity type and where it is in the text scanned; the policy layer decides what to
do (block, redact, pseudonymise, restrict, log). Audit entries and metrics carry entity types and
counts only, so nothing here is ever logged with the matched value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected span: `text[start:end]` is an `entity` (e.g. `CREDIT_CARD`, `EMAIL_ADDRESS`)."""

    entity: str
    start: int
    end: int
    score: float
    detector: str

    def __repr__(self) -> str:  # never the value
        return f"Finding({self.entity}, {self.start}:{self.end}, {self.score:.2f}, {self.detector})"


class Detector(Protocol):
    """Finds entities of some types in a text. Pure, thread-safe, and fast on texts with nothing in them."""

    @property
    def name(self) -> str: ...

    @property
    def entities(self) -> frozenset[str]:
        """Every entity type this detector can report."""
        ...

    def scan(self, text: str) -> list[Finding]:
        """Every finding in `text` (possibly overlapping; `Scanner` resolves overlaps)."""
        ...
