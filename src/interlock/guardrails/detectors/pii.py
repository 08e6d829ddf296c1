"""Structured personal identifiers with Presidio's pattern recognizers, offline (issue 13).

One Presidio `AnalyzerEngine` on `NoOpNlpEngine` (no spaCy model) is built per detector, once: it is
slow to build and safe to share, since recognizers keep no per-call state. Checksummed identifiers
(cards: Luhn + issuer range; IBAN: mod-97 + country format; SSN: area/group/serial rules; IP: parsed)
never fire on look-alikes. Presidio's card and phone recognizers are replaced by ours
(`recognizers.py`); its driver-licence and bank-number recognizers are left out: they match ordinary
words and digit runs (presidio #1063).

Nothing here reaches the network: the e-mail check uses tldextract's bundled suffix-list snapshot.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # before presidio imports tldextract

import tldextract
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CryptoRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    MacAddressRecognizer,
    UkNinoRecognizer,
    UsItinRecognizer,
    UsSsnRecognizer,
)

from interlock.guardrails.detectors.recognizers import (
    CardRecognizer,
    IpAddressRecognizer,
    PhoneNumberRecognizer,
    SsnContextRecognizer,
)
from interlock.guardrails.findings import Finding

DEFAULT_ENTITIES: frozenset[str] = frozenset(
    {"CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "IP_ADDRESS"}
)
EXTRA_ENTITIES: frozenset[str] = frozenset({"US_ITIN", "UK_NINO", "CRYPTO", "MAC_ADDRESS"})
ALL_ENTITIES: frozenset[str] = DEFAULT_ENTITIES | EXTRA_ENTITIES
DEFAULT_PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN", "ES", "IT", "NL")

# A text without a digit or '@' (or, for letter-only IPv6 like "dead:beef::1", a hex pair around ':')
# cannot hold any entity above. A plain character class is scanned fast; alternations are not.
_DIGIT_OR_AT = re.compile(r"[\d@]")
_LOCAL_PART = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-\u00c0-\uffff]+$")
_DOMAIN = re.compile(r"[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+")
_LOWER_IBAN = re.compile(r"(?<![A-Za-z0-9])[a-z]{2}\d{2}[ -]?[a-z0-9]{4}")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX_COLON = re.compile(r"[0-9A-Fa-f]:[0-9A-Fa-f:]")


class _EmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer, found from each '@' and validated with a suffix list kept in-process.

    Presidio's pattern starts with a character class, so it is tried at every word character (~0.8 ms
    per KB); anchoring on '@' finds the same addresses for a few microseconds per '@'.
    """

    def __init__(self) -> None:
        super().__init__()
        self._tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    def validate_result(self, pattern_text: str) -> bool:
        """True when the domain ends in a public suffix."""
        return bool(self._tld(pattern_text.rsplit("@", 1)[-1]).suffix)

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None, regex_flags: int | None = None
    ) -> list[RecognizerResult]:
        """Every e-mail address in `text`."""
        results = []
        at = text.find("@")
        while at != -1:
            local = _LOCAL_PART.search(text, max(0, at - 64), at)
            domain = _DOMAIN.match(text, at + 1)
            if local and domain and self.validate_result(domain.group()):
                start = local.start()
                while text[start] == ".":  # a local part never starts with a dot
                    start += 1
                if start < at:
                    results.append(
                        RecognizerResult(
                            "EMAIL_ADDRESS",
                            start,
                            domain.end(),
                            1.0,
                            recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: "EmailRecognizer"},
                        )
                    )
            at = text.find("@", at + 1)
        return results


class _NoContext(ContextAwareEnhancer):
    """NoOpNlpEngine gives no tokens to look for context words in; skip the enhancer's deep copy."""

    def __init__(self) -> None:
        super().__init__(0.0, 0.0, 0, 0)

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        """The results unchanged."""
        return raw_results


class _IbanRecognizer(IbanRecognizer):
    """Presidio's IBAN recognizer, also on lower-case IBANs ("de89 3704 …"), upper-cased in place."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None, regex_flags: int | None = None
    ) -> list[RecognizerResult]:
        """IBANs in `text`, and in its ASCII-upper-cased copy (same offsets) when it has lower-case ones."""
        results: list[RecognizerResult] = super().analyze(text, entities)
        if _LOWER_IBAN.search(text):
            seen = {(r.start, r.end) for r in results}
            upper = text.translate(_ASCII_UPPER)
            results += [r for r in super().analyze(upper, entities) if (r.start, r.end) not in seen]
        return results


class _NoValuesInLogs(logging.Filter):
    """Presidio logs some failures with the matched text as an argument; keep the template only."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.args = ()
        return True


def _recognizers(entities: frozenset[str], regions: tuple[str, ...]) -> Iterable[EntityRecognizer]:
    makers: dict[str, list[EntityRecognizer]] = {
        "CREDIT_CARD": [CardRecognizer()],
        "IBAN_CODE": [_IbanRecognizer()],
        "EMAIL_ADDRESS": [_EmailRecognizer()],
        "PHONE_NUMBER": [PhoneNumberRecognizer(regions)],
        "US_SSN": [UsSsnRecognizer(), SsnContextRecognizer()],
        "IP_ADDRESS": [IpAddressRecognizer()],
        "US_ITIN": [UsItinRecognizer()],
        "UK_NINO": [UkNinoRecognizer()],
        "CRYPTO": [CryptoRecognizer()],
        "MAC_ADDRESS": [MacAddressRecognizer()],
    }
    for entity in sorted(entities):
        yield from makers[entity]


class PiiDetector:
    """Cards, IBANs, e-mail addresses, phone numbers, US SSNs, IP addresses (and opt-in extras).

    `entities` picks types from `ALL_ENTITIES` (default `DEFAULT_ENTITIES`); findings scoring below
    `score_threshold` are dropped; `phone_regions` are the ISO regions whose national formats count.
    """

    def __init__(
        self,
        entities: Iterable[str] | None = None,
        score_threshold: float = 0.5,
        phone_regions: Iterable[str] = DEFAULT_PHONE_REGIONS,
    ) -> None:
        chosen = frozenset(entities) if entities is not None else DEFAULT_ENTITIES
        unknown = sorted(chosen - ALL_ENTITIES)
        if unknown:
            raise ValueError(f"unknown PII entities: {', '.join(unknown)}; known: {', '.join(sorted(ALL_ENTITIES))}")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError("score_threshold must be between 0 and 1")
        self._entities = chosen
        self._threshold = score_threshold
        presidio_log = logging.getLogger("presidio-analyzer")
        if not any(isinstance(f, _NoValuesInLogs) for f in presidio_log.filters):
            presidio_log.addFilter(_NoValuesInLogs())
        if presidio_log.level == logging.NOTSET:  # its INFO lines (one per recognizer loaded) are start-up noise
            presidio_log.setLevel(logging.WARNING)
        registry = RecognizerRegistry(supported_languages=["en"])
        for recognizer in _recognizers(chosen, tuple(r.upper() for r in phone_regions)):
            registry.add_recognizer(recognizer)
        nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
        nlp.load()
        self._engine = AnalyzerEngine(
            registry=registry, nlp_engine=nlp, supported_languages=["en"], context_aware_enhancer=_NoContext()
        )
        self._entity_list = sorted(chosen)
        self.scan("warm up: 4111 1111 1111 1111 a@b.io +1 415 555 2671 DE89370400440532013000 10.0.0.1")

    @property
    def name(self) -> str:
        """Detector name in findings and audit entries."""
        return "pii"

    @property
    def entities(self) -> frozenset[str]:
        """The entity types this instance reports."""
        return self._entities

    def could_match(self, text: str) -> bool:
        """Cheap pre-check: False proves `scan(text)` finds nothing."""
        if text.isascii():  # O(1) in CPython; single-character `in` scans are far faster than a regex
            if any(ch in text for ch in "0123456789@"):
                return True
        elif _DIGIT_OR_AT.search(text) is not None:
            return True
        return ":" in text and _HEX_COLON.search(text) is not None

    def scan(self, text: str) -> list[Finding]:
        """Every finding scoring at least the threshold (overlaps left to `Scanner`).

        Presidio runs only on windows around the candidate characters (digits, '@', hex colons), each
        `WINDOW` characters either side, widened to whitespace: every entity and the context words that
        score it lie within that distance of a candidate, and prose between candidates is not scanned.
        """
        if not self.could_match(text):
            return []
        found: list[Finding] = []
        for start, end in _windows(text):
            part = text[start:end]
            results = self._engine.analyze(
                text=part, language="en", entities=self._entity_list, score_threshold=self._threshold
            )
            found.extend(
                Finding(r.entity_type, start + r.start, start + r.end, min(float(r.score), 1.0), self.name)
                for r in results
                if not (r.entity_type == "US_SSN" and part[r.start] == "9")  # 9xx areas are ITINs, never SSNs
            )
        return found


WINDOW = 160
_CANDIDATE = re.compile(r"[\d@]|[0-9A-Fa-f]:[0-9A-Fa-f:]")  # what `could_match` looks for


def _windows(text: str) -> list[tuple[int, int]]:
    """Spans of `text` within `WINDOW` characters of a candidate, merged, with edges moved out to whitespace."""
    if len(text) <= 4 * WINDOW:
        return [(0, len(text))]
    spans: list[tuple[int, int]] = []
    for m in _CANDIDATE.finditer(text):
        lo, hi = max(0, m.start() - WINDOW), min(len(text), m.end() + WINDOW)
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], hi)
        else:
            spans.append((lo, hi))
    out: list[tuple[int, int]] = []
    for lo, hi in spans:
        while lo > 0 and not text[lo - 1].isspace():
            lo -= 1
        while hi < len(text) and not text[hi].isspace():
            hi += 1
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out
