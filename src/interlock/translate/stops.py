"""Stop sequences found in generated text, for answers that must say which one ended them.

OpenAI-shaped upstreams report only `finish_reason: "stop"`, and most strip the sequence that matched.
When an upstream did not apply a stop sequence (its text still holds one), the text is cut there and
the sequence is known; a streamed answer holds back what may be the start of one until it is not.
"""

from __future__ import annotations

from collections.abc import Sequence


def first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """Where the earliest stop sequence in `text` begins, and which one it is."""
    best: tuple[int, str] | None = None
    for stop in stops:
        i = text.find(stop) if stop else -1
        if i >= 0 and (best is None or i < best[0]):
            best = (i, stop)
    return best


class StopScanner:
    """Streamed text with everything from the first stop sequence on removed."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        """The part of `text` (with what was held) that is known to come before any stop sequence."""
        if self.matched is not None:
            return ""
        if not self._stops:
            return text
        held = self._held + text
        found = first_stop(held, self._stops)
        if found is not None:
            self._held, self.matched = "", found[1]
            return held[: found[0]]
        keep = max((n for s in self._stops for n in range(1, len(s)) if held.endswith(s[:n])), default=0)
        self._held = held[len(held) - keep :]
        return held[: len(held) - keep]

    def flush(self) -> str:
        """What was held back, at the end of the answer (it was no stop sequence after all)."""
        held, self._held = self._held, ""
        return held
