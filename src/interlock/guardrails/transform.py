"""Text changes the guardrails make: typed placeholders, stable pseudonyms and their restoration, and the
hold-back window that lets a streamed answer be scanned before any byte of it reaches the client.

Placeholders look like `<EMAIL_ADDRESS>` (redacted) and `<EMAIL_ADDRESS_1>` (pseudonymised: the same
value gets the same number for the whole request, so the model can still tell two people apart). The
pseudonym map lives in the request's context only: it is never logged, stored or sent anywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from interlock.guardrails.findings import Finding

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]{0,63})_(\d{1,6})>")
MAX_PLACEHOLDER = 72  # "<" + 64-character type + "_" + 6 digits + ">"
_WORD = re.compile(r"\S+")


def redacted(entity: str) -> str:
    """The placeholder a redacted value becomes."""
    return f"<{entity}>"


@dataclass(slots=True)
class Pseudonyms:
    """One request's stable placeholders: value <-> `<TYPE_N>`."""

    by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    by_placeholder: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def __repr__(self) -> str:  # never the values
        return f"Pseudonyms({len(self.by_placeholder)} values)"

    def placeholder(self, entity: str, value: str) -> str:
        """The placeholder for `value` (the same one each time it appears in this request)."""
        found = self.by_value.get((entity, value))
        if found is None:
            n = self.counts[entity] = self.counts.get(entity, 0) + 1
            found = f"<{entity}_{n}>"
            self.by_value[(entity, value)] = found
            self.by_placeholder[found] = value
        return found

    def restore(self, text: str, *, json_string: bool = False) -> str:
        """`text` with every placeholder of this request replaced by its value (unknown ones stay).

        `json_string`: the text is inside a JSON string (tool-call arguments), so values are escaped.
        """
        if not self.by_placeholder or "<" not in text:
            return text

        def back(m: re.Match[str]) -> str:
            value = self.by_placeholder.get(m.group(0))
            if value is None:
                return m.group(0)
            return json.dumps(value)[1:-1] if json_string else value

        return PLACEHOLDER.sub(back, text)


Replace = Callable[[Finding, str], str | None]
"""Given a finding and its matched value: the text to put in its place, or None to leave it."""


def rewrite(text: str, findings: Sequence[Finding], replace: Replace) -> str:
    """`text` with each finding (sorted, not overlapping) replaced as `replace` says."""
    if not findings:
        return text
    out: list[str] = []
    at = 0
    for f in findings:
        if f.start < at:
            continue
        value = text[f.start : f.end]
        new = replace(f, value)
        if new is None:
            continue
        out.append(text[at : f.start])
        out.append(new)
        at = f.end
    if not out:
        return text
    out.append(text[at:])
    return "".join(out)


def _open_placeholder(text: str, limit: int) -> int:
    """`limit`, moved back to the start of a placeholder that `text[:limit]` would cut in two."""
    start = text.rfind("<", max(0, limit - MAX_PLACEHOLDER), limit)
    if start < 0 or ">" in text[start:limit]:
        return limit
    return start


class HoldBack:
    """A streamed text, scanned before it is released: everything but the last `hold` characters is
    released once scanned, so an entity no longer than `hold` is always seen whole before any of it goes.

    With `could_match` (the detectors' cheap proof of absence), the window holds less: only from the
    first whitespace-separated word in it that could start an entity, and always the last word while
    it may still grow. Prose with no candidate characters then streams a word behind, not `hold`
    characters behind.

    `feed(text)` returns what may be sent now. A finding whose action is block stops the stream: what
    came before it is returned with `blocked` set, and nothing after it is ever released. A finding
    that is cut by the release point holds the release back to its start until it is complete.
    """

    def __init__(
        self,
        scan: Callable[[str], list[Finding]],
        action: Callable[[str], str | None],
        pseudonyms: Pseudonyms | None,
        hold: int,
        *,
        json_string: bool = False,
        could_match: Callable[[str], bool] | None = None,
    ) -> None:
        self._scan = scan
        self._could_match = could_match
        self._action = action
        self._pseudonyms = pseudonyms
        self._hold = max(hold, MAX_PLACEHOLDER if pseudonyms else 0)
        self._json = json_string
        self._buffer = ""
        self.blocked: Finding | None = None
        self.findings: list[Finding] = []

    @property
    def pending(self) -> int:
        """Characters held back now."""
        return len(self._buffer)

    def feed(self, text: str, *, final: bool = False) -> str:
        """Take `text`; return the part of the stream that may be released now (all of it when `final`)."""
        if self.blocked is not None:
            return ""
        buf = self._buffer + text
        if not buf:
            return ""
        limit = len(buf) if final else max(0, len(buf) - self._hold)
        if not final and self._could_match is not None:
            limit = self._quiet_limit(buf, limit)
        if limit == 0:
            self._buffer = buf
            return ""
        found = self._scan(buf)
        acted: list[Finding] = []
        for f in found:
            if f.start >= limit:
                break
            action = self._action(f.entity)
            if action is None:
                continue
            if action == "block":
                self.blocked = f
                self.findings.append(f)
                self._buffer = ""
                return self._release(buf[: f.start], acted)
            if f.end > limit:  # still arriving: hold from its start
                limit = f.start
                break
            acted.append(f)
        if not final and self._pseudonyms is not None:
            limit = _open_placeholder(buf, limit)
        self.findings.extend(acted)
        self._buffer = buf[limit:]
        return self._release(buf[:limit], acted)

    def _quiet_limit(self, buf: str, limit: int) -> int:
        """Release past `limit` up to the first word in the window that could start an entity, or up to
        the last word (which may still grow)."""
        assert self._could_match is not None
        last_word = max(buf.rfind(" "), buf.rfind("\n"), buf.rfind("\t")) + 1
        if last_word <= limit:
            return limit
        for m in _WORD.finditer(buf, limit, last_word):
            if self._could_match(m.group(0)):
                return max(limit, m.start())
        return last_word

    def _release(self, text: str, acted: list[Finding]) -> str:
        out = rewrite(text, acted, self._replace)
        if self._pseudonyms is not None:
            out = self._pseudonyms.restore(out, json_string=self._json)
        return out

    def _replace(self, f: Finding, value: str) -> str | None:
        return redacted(f.entity) if self._action(f.entity) == "redact" else None
