"""Per-org patterns: named regexes (customer ids, project codes) and keyword lists (issue 13).

Patterns come from admins, so they are checked when the config is loaded, not on the request path:
bounded length, a compile check, no empty matches, and a probe against adversarial inputs under a
timeout, so a catastrophic pattern (`(a+)+$`) is refused with a clear error instead of stalling
requests. They run with the `regex` package and a per-scan timeout as a second guard. Keywords of one
entity are matched case-insensitively as whole words through a single compiled alternation.
"""

from __future__ import annotations

import re as stdlib_re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]
from typing import Any

import regex

from interlock.guardrails.findings import Finding

MAX_PATTERN_LENGTH = 512
MAX_KEYWORDS = 10_000
SCAN_TIMEOUT_S = 0.05
_ENTITY_NAME = stdlib_re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_PROBE_TIMEOUT_S = 0.1


def _probes(pattern: str) -> list[str]:
    """Inputs that make backtracking blow up: long runs of the pattern's own characters, then a misfit."""
    chars = [*sorted({c for c in pattern if c.isalnum()})[:12], "a", "1", " ", "-", "."]
    runs = [c * 256 + "\x00" for c in dict.fromkeys(chars)]
    return [*runs, "aA1-_. " * 40 + "\x00", "x@" * 128]


class CustomPatternError(ValueError):
    """A custom pattern or keyword list is invalid; the message names the entity and the reason."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    entity: str
    pattern: regex.Pattern[str]
    score: float


def _check_entity(entity: str) -> None:
    if not _ENTITY_NAME.match(entity):
        raise CustomPatternError(
            f"custom entity name {entity!r} must be upper case letters, digits and '_' (e.g. CUSTOMER_ID)"
        )


def _nested_unbounded(parsed: Any, inside_repeat: bool = False) -> bool:
    """True when an unbounded repeat sits inside another unbounded repeat, like `(a+)+` or `(\\w+\\s?)*`."""
    for op, arg in parsed:
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            _low, high, sub = arg
            unbounded = high == sre_constants.MAXREPEAT
            if unbounded and inside_repeat:
                return True
            if _nested_unbounded(sub, inside_repeat or unbounded):
                return True
        elif op == sre_constants.SUBPATTERN:
            if _nested_unbounded(arg[-1], inside_repeat):
                return True
        elif op == sre_constants.BRANCH:
            if any(_nested_unbounded(branch, inside_repeat) for branch in arg[1]):
                return True
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT) and _nested_unbounded(arg[1], inside_repeat):
            return True
    return False


def _catastrophic(pattern: str) -> bool:
    """Nested unbounded repeats (checked on the stdlib parse), or slow on adversarial probes."""
    try:
        if _nested_unbounded(sre_parser.parse(pattern)):
            return True
    except (stdlib_re.error, RecursionError, OverflowError):
        pass  # syntax only the `regex` package knows (\\p{L}, …): the probes below still run
    return False


def compile_pattern(entity: str, pattern: str) -> regex.Pattern[str]:
    """`pattern` compiled, or `CustomPatternError` saying why it cannot be used for `entity`."""
    _check_entity(entity)
    if not pattern:
        raise CustomPatternError(f"custom pattern for {entity} is empty")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise CustomPatternError(
            f"custom pattern for {entity} is {len(pattern)} characters; the limit is {MAX_PATTERN_LENGTH}"
        )
    try:
        compiled = regex.compile(pattern, regex.VERSION0)
    except regex.error as exc:
        raise CustomPatternError(f"custom pattern for {entity} does not compile: {exc}") from None
    if compiled.search("") is not None:
        raise CustomPatternError(f"custom pattern for {entity} matches the empty string")
    slow = _catastrophic(pattern)
    for probe in [] if slow else _probes(pattern):
        try:
            compiled.search(probe, timeout=_PROBE_TIMEOUT_S)
        except TimeoutError:
            slow = True
            break
    if slow:
        raise CustomPatternError(
            f"custom pattern for {entity} backtracks catastrophically (nested or overlapping repeats such "
            "as (a+)+ or (a|aa)+); rewrite it without nested quantifiers"
        )
    return compiled


def compile_keywords(entity: str, keywords: Iterable[str]) -> regex.Pattern[str]:
    """One case-insensitive whole-word alternation for `keywords` (longest first)."""
    _check_entity(entity)
    words = sorted({k.strip() for k in keywords if k.strip()}, key=lambda k: (-len(k), k))
    if not words:
        raise CustomPatternError(f"keyword list for {entity} is empty")
    if len(words) > MAX_KEYWORDS:
        raise CustomPatternError(f"keyword list for {entity} has {len(words)} entries; the limit is {MAX_KEYWORDS}")
    too_long = [w for w in words if len(w) > 200]
    if too_long:
        raise CustomPatternError(f"keyword list for {entity} has an entry longer than 200 characters")
    alternation = "|".join(regex.escape(w) for w in words)
    return regex.compile(rf"(?<!\w)(?:{alternation})(?!\w)", regex.IGNORECASE | regex.VERSION0)


class CustomDetector:
    """Org-defined entities: `patterns` maps an entity name to a regex, `keywords` to a list of words.

    Both are validated here (`CustomPatternError` on a bad one). Patterns score `pattern_score`,
    keywords `keyword_score`. A pattern that times out on one text is skipped for that text, so
    nothing an admin writes can stall a request for long.
    """

    def __init__(
        self,
        patterns: Mapping[str, str] | None = None,
        keywords: Mapping[str, Iterable[str]] | None = None,
        pattern_score: float = 0.9,
        keyword_score: float = 0.8,
    ) -> None:
        compiled = [_Compiled(e, compile_pattern(e, p), pattern_score) for e, p in (patterns or {}).items()]
        compiled += [_Compiled(e, compile_keywords(e, w), keyword_score) for e, w in (keywords or {}).items()]
        self._compiled = tuple(compiled)
        self._entities = frozenset(c.entity for c in compiled)
        self.timeouts = 0  # scans cut short by the timeout, for metrics (a plain int: += is fine here)

    @property
    def name(self) -> str:
        """Detector name in findings and audit entries."""
        return "custom"

    @property
    def entities(self) -> frozenset[str]:
        """The entity types this instance reports."""
        return self._entities

    def could_match(self, text: str) -> bool:
        """Custom patterns can match anything, so there is no cheap proof of absence."""
        return bool(self._compiled) and bool(text)

    def scan(self, text: str) -> list[Finding]:
        """Every match of every pattern and keyword list."""
        found: list[Finding] = []
        for c in self._compiled:
            try:
                for m in c.pattern.finditer(text, timeout=SCAN_TIMEOUT_S):
                    if m.end() > m.start():
                        found.append(Finding(c.entity, m.start(), m.end(), c.score, self.name))
            except TimeoutError:
                self.timeouts += 1
        return found

    def __repr__(self) -> str:  # patterns may themselves name customers; show only the entity names
        return f"CustomDetector({', '.join(sorted(self._entities))})"
