"""Provenance: did an argument value of a tool call come from trusted content, or only from untrusted content?

Trusted: the system (and developer) messages and the user's messages — what the agent's operator and its
user wrote. Untrusted: tool results (role `tool`), which carry whatever a web page, an e-mail or another
system put there. The model's own earlier turns are neither: they may repeat untrusted text, so a value
counts as trusted only if it appears in trusted content.

A value is *untrusted-only* when it appears in the untrusted text and nowhere in the trusted text, both
compared in normalised form:
- Unicode NFKC (full-width digits, ligatures, compatibility forms), case folded;
- URL-decoded (up to three rounds, for double encoding) and HTML entities unescaped;
- whitespace and zero-width characters removed, so `DE89 3704 0044` matches `DE8937040044`;
- for values that are mostly digits (account, card, phone numbers): the digits alone, matched within runs
  of digits joined only by spaces, dashes, dots or slashes, so `0044-0532` matches `0044 0532`.
Matching is by substring, so a value embedded in a longer untrusted string still counts; a URL or e-mail
address is also checked by its host (a link to a domain that only a tool result named).

Limits (documented in the README): values shorter than `MIN_CHARS` after normalisation are not judged
(too common to tell apart); a value the model transforms beyond these normalisations (base64, translation,
spelling out digits, homoglyphs outside NFKC, splitting it across arguments) is not traced back to its
source; and a value that also appears in trusted content counts as trusted, even if it was the attacker
who chose it.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MIN_CHARS = 4
_INVISIBLE = re.compile(r"[\s\u200b-\u200f\u2060-\u2064\ufeff\u00ad]+")
_DIGIT_RUN = re.compile(r"\d(?:[\d\s./-]*\d)?")


def normalise(text: str) -> str:
    """The form both sides are compared in (see the module docstring)."""
    for _ in range(3):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    text = unicodedata.normalize("NFKC", html.unescape(text)).casefold()
    return _INVISIBLE.sub("", text)


def _digit_runs(text: str) -> list[str]:
    return ["".join(c for c in m.group() if c.isdigit()) for m in _DIGIT_RUN.finditer(text)]


@dataclass(frozen=True, slots=True)
class Corpus:
    """One side's text, normalised once per request."""

    text: str
    digits: tuple[str, ...]

    @classmethod
    def of(cls, texts: Iterable[str]) -> Corpus:
        """The corpus of these texts."""
        raw = "\n".join(texts)
        return cls(normalise(raw), tuple(_digit_runs(unicodedata.normalize("NFKC", unquote(raw)))))

    def contains(self, value: str) -> bool:
        """Whether the (normalised) value appears in this corpus."""
        norm = normalise(value)
        if len(norm) >= MIN_CHARS and norm in self.text:
            return True
        digits = "".join(c for c in unicodedata.normalize("NFKC", value) if c.isdigit())
        mostly_digits = len(digits) >= 6 and len(digits) * 2 >= len(norm)
        return mostly_digits and any(digits in run for run in self.digits)


def candidates(value: str) -> Iterator[str]:
    """The value itself and, for a URL or e-mail address, its host."""
    yield value
    v = value.strip()
    if "://" in v:
        host = urlsplit(v).hostname
        if host:
            yield host
    elif re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", v):
        yield v.rsplit("@", 1)[1]


def lookup(args: object, path: str) -> object | None:
    """The value at a dotted path of decoded JSON arguments (None: absent)."""
    value = args
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def leaves(args: object, paths: list[str] | None) -> Iterator[str]:
    """The values of decoded arguments that provenance judges: strings and numbers, all or at `paths`."""
    if paths is not None:
        for path in paths:
            yield from leaves(lookup(args, path), None)
        return
    if isinstance(args, dict):
        for v in args.values():
            yield from leaves(v, None)
    elif isinstance(args, list):
        for v in args:
            yield from leaves(v, None)
    elif isinstance(args, str):
        yield args
    elif isinstance(args, int | float) and not isinstance(args, bool):
        yield str(args)


def untrusted_only(values: Iterable[str], trusted: Corpus, untrusted: Corpus) -> bool:
    """Whether any value (or its host) appears in untrusted content and nowhere in trusted content."""
    for value in values:
        for c in candidates(value):
            if len(normalise(c)) < MIN_CHARS and not any(ch.isdigit() for ch in c):
                continue
            if untrusted.contains(c) and not trusted.contains(c):
                return True
    return False
