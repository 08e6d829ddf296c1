"""Presidio recognizers we add where Presidio's own miss or over-fire (issue 13).

Presidio's card pattern found 71% of generated cards (no Visa-19 or Maestro) and accepts any Luhn-valid
run starting with 1, 3, 4, 5 or 6; its phone recognizer only keeps numbers `phonenumbers` deems *valid*
(82%: fictional area codes fail). These replacements keep Presidio's shape (an `EntityRecognizer` in its
registry) but decide with checksums, issuer ranges and number plans, so a look-alike never fires.
Each recognizer is pure after construction; `analyze` keeps no state, so one instance serves every thread.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import phonenumbers
from presidio_analyzer import LocalRecognizer, RecognizerResult

# Separators people put inside a card number: space, dash, no-break and thin spaces.
_SEP = "[ \\-\u00a0\u2009\u202f]"
# A run of digit groups joined by single separators; the card is searched inside the run.
_DIGIT_RUN = re.compile(rf"(?<![\w.,/])\d+(?:{_SEP}\d+)*(?![\w/]|[.,]\d)")

# Issuer ranges (first digits, allowed lengths), from the ISO/IEC 7812 IIN tables brands publish.
_BRANDS: tuple[tuple[str, tuple[tuple[int, int], ...], tuple[int, ...]], ...] = (
    ("visa", ((4, 4),), (13, 16, 19)),
    ("mastercard", ((51, 55), (2221, 2720)), (16,)),
    ("amex", ((34, 34), (37, 37)), (15,)),
    ("diners", ((300, 305), (3095, 3095), (36, 36), (38, 39)), (14, 15, 16, 17, 18, 19)),
    ("discover", ((6011, 6011), (644, 649), (65, 65), (622126, 622925)), (16, 17, 18, 19)),
    ("jcb", ((3500, 3599), (3088, 3088), (3096, 3096), (3112, 3112), (3158, 3158), (3337, 3337)), (16, 17, 18, 19)),
    ("jcb15", ((2131, 2131), (1800, 1800)), (15,)),
    ("unionpay", ((62, 62), (81, 81)), (16, 17, 18, 19)),
    ("maestro", ((50, 50), (56, 69), (6304, 6304), (6759, 6759), (6761, 6763)), tuple(range(12, 20))),
    ("mir", ((2200, 2204),), (16, 17, 18, 19)),
    ("rupay", ((60, 60), (65, 65), (81, 82), (508, 508), (353, 353), (356, 356)), (16,)),
    ("verve", ((506099, 506198), (650002, 650027)), (16, 18, 19)),
    ("troy", ((9792, 9792),), (16,)),
    ("uatp", ((1, 1),), (15,)),
)
# Words that make a Luhn-valid number of an unlisted issuer a card anyway (several languages).
_CARD_CONTEXT = re.compile(
    r"(?i)\b(card|cc|credit|debit|visa|master ?card|amex|maestro|carte|karte|tarjeta|carta|kaart|pan)\b"
)
_PHONE_CONTEXT = re.compile(
    r"(?i)(phone|tel\b|tel\.|tél|telefon|telefono|teléfono|mobile|mobil|móvil|portable|cell|call|ring|"
    r"fax|whatsapp|sms|text me|reach (?:me|us)|contact|hotline|numéro|nummer|numero|número)"
)
_PHONE_SEPARATOR = re.compile(r"\d[ \-.)/]+\(?\d")
# A phone-number candidate: optional + / 00, digit groups joined by short separators, an extension.
_PHONE_RUN = re.compile(
    r"(?<![\w+@./#=-])(?<!\d[ .:-])(?:\+|\(\+)?\(?\d[\d\u00a0 ().\-/]*\d\)?"
    r"(?:\s?(?:x|ext\.?|extension|#)\s?\d{1,6})?(?![\w@]|[.-]\d| \d|/\d)"
)
_NOT_PHONE = re.compile(
    r"^\d{1,3}(?:\.\d{1,3}){3}$"  # IPv4
    r"|^[12]\d{3}[-/.][01]?\d[-/.][0-3]?\d"  # ISO date
    r"|^[0-3]?\d[-/.][01]?\d[-/.](?:19|20)?\d\d(?:$|\s)"  # day-month-year
    r"|^\d{3}([- ])\d{2}\1\d{4}$"  # US SSN shape
    r"|^\d+[.,]\d+$"  # a decimal number
    r"|^\d{4}([ -])\d{4}\1\d{4}"  # card groups
    r"|\s{2,}|[-./]{2,}|\(\s*\)"
)
_EXTENSION = re.compile(r"(?i)x|ext")
_TRUNK_BARE = re.compile(r"^0[1-9]\d{7,10}$")
_ID_TAIL = re.compile(r"^\d{5,}[-/]\d{1,2}$")  # one separator before a 1-2 digit suffix
_ID_BEFORE = re.compile(
    r"(?i)(?:\b(?:order|invoice|inv|id|ref|reference|ticket|account|acct|tracking|serial|sku|item|case|po|"
    r"transaction|txn|customer|client|member|policy|claim|batch|build|run|job|version|no|nr|n°)\.?|#)\s*[:#]?\s*$"
)
_SEPARATOR_KIND = re.compile(r"(?<=\d)[-./](?=\d)")
_NANP_SHAPE = re.compile(r"^(?:1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?:\s?(?:x|ext\.?)\s?\d+)?$")
_SSN_CONTEXT = re.compile(r"(?i)\b(ssn|social security|soc\.? ?sec|ss#|tax ?id|tin)\b")
_DATE_LIKE = re.compile(r"^\d{1,4}([-/.])\d{1,2}\1\d{1,4}$|^\d{1,2}:\d{2}(:\d{2})?$")
_CURRENCY_BEFORE = re.compile(r"[$€£¥₹]\s?$|\b(?:USD|EUR|GBP|CHF|INR|JPY)\s?$")


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """The brand whose issuer range and length fit `digits`, or None."""
    for brand, ranges, lengths in _BRANDS:
        if len(digits) not in lengths:
            continue
        for low, high in ranges:
            width = len(str(low))
            if low <= int(digits[:width]) <= high:
                return brand
    return None


def _result(entity: str, start: int, end: int, score: float, name: str) -> RecognizerResult:
    return RecognizerResult(
        entity_type=entity,
        start=start,
        end=end,
        score=score,
        recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: name},
    )


class CardRecognizer(LocalRecognizer):
    """Payment cards of every brand and length 12-19, grouped any way, Luhn-checked.

    A known issuer range and length scores 0.95; a Luhn-valid number of another issuer only counts
    (0.6) with a card word just before it. Groups are tried as sub-runs, so "4111 1111 1111 1111 123"
    (a CVV after the number) still finds the card, and a 25-digit id never does.
    """

    def __init__(self) -> None:
        super().__init__(supported_entities=["CREDIT_CARD"], name="CardRecognizer")

    def load(self) -> None:
        """Nothing to load: the pattern is compiled at import."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        """Every card number in `text`."""
        results: list[RecognizerResult] = []
        for run in _DIGIT_RUN.finditer(text):
            if run.end() - run.start() < 12:  # fewer than 12 digits: most numbers in a text
                continue
            found = self._best_in_run(text, run.start(), run.group())
            if found is not None:
                results.append(found)
        return results

    def _best_in_run(self, text: str, offset: int, run: str) -> RecognizerResult | None:
        groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", run)]
        total = sum(e - s for s, e in groups)
        if total < 12:
            return None
        if total <= 19:  # card-length as written: the whole run is the number, or nothing is
            digits = "".join(run[s:e] for s, e in groups)
            score = self._score(text, offset, digits) if luhn_valid(digits) else 0.0
            return _result("CREDIT_CARD", offset, offset + len(run), score, "CardRecognizer") if score else None
        # Longer: a card with something attached ("4111111111111111 2027 12"); only a branded card
        # that starts or ends the run counts, so broken numbers rarely yield a lucky sub-run.
        best: tuple[int, int] | None = None
        for i, j in [(0, j) for j in range(len(groups))] + [(i, len(groups) - 1) for i in range(len(groups))]:
            digits = "".join(run[s:e] for s, e in groups[i : j + 1])
            if 12 <= len(digits) <= 19 and luhn_valid(digits) and card_brand(digits) and len(set(digits)) > 1:
                start, end = groups[i][0], groups[j][1]
                if best is None or end - start > best[1] - best[0]:
                    best = (start, end)
        if best is None:
            return None
        return _result("CREDIT_CARD", offset + best[0], offset + best[1], 0.95, "CardRecognizer")

    @staticmethod
    def _score(text: str, start: int, digits: str) -> float:
        if card_brand(digits) is not None and len(set(digits)) > 1:
            return 0.95
        if _CARD_CONTEXT.search(text, max(0, start - 40), start):
            return 0.6
        return 0.0


class PhoneNumberRecognizer(LocalRecognizer):
    """Phone numbers, national and international, parsed by `phonenumbers` for several regions.

    `phonenumbers.PhoneNumberMatcher` costs ~7 ms per region per KB, so candidates come from one cheap
    pattern (digit groups with phone separators) and only those are parsed. A candidate counts when it
    is a *valid* number written like one (separators, `+`, `(`), an international number of possible
    length, a NANP-shaped number, or any possible number right after a phone word. Chains of more
    digit groups (cards, IBANs), dates, times, IP addresses and amounts are dropped.
    """

    def __init__(self, regions: tuple[str, ...]) -> None:
        super().__init__(supported_entities=["PHONE_NUMBER"], name="PhoneNumberRecognizer")
        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown or not regions:
            raise ValueError(f"unknown phone regions: {', '.join(unknown) or '(none given)'}")
        self.regions = regions
        # Regions whose national format always starts with the trunk prefix 0 (India's mobiles are
        # routinely written without it, so India is left out).
        self._trunk_zero = frozenset(r for r in regions if r != "IN" and _national_prefix(r) == "0")

    def load(self) -> None:
        """Nothing to load: `phonenumbers` metadata loads lazily on first use."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        """Every phone number in `text`."""
        results = []
        for m in _PHONE_RUN.finditer(text):
            if m.end() - m.start() < 7:  # fewer than 7 digits
                continue
            for start, end in self._split(text, m.start(), m.end()):
                score = self._score(text, start, end)
                if score:
                    results.append(_result("PHONE_NUMBER", start, end, score, type(self).__name__))
        return results

    def _split(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """The run itself, or two numbers written side by side ("555-123-4567 555-987-6543")."""
        run = text[start:end]
        if _digit_count(_EXTENSION.split(run, maxsplit=1)[0]) <= 15:
            return [(start, end)]
        for gap in re.finditer(r"\s+", run):
            left, right = run[: gap.start()], run[gap.end() :]
            if all(re.search(r"[-.()+]", side) and self._parse(side)[1] for side in (left, right)):
                return [(start, start + gap.start()), (start + gap.end(), end)]
        return []

    def _parse(self, raw: str) -> tuple[bool, bool]:
        """(possible, valid) for `raw` in the first region where it is possible."""
        number = re.split(r"(?i)\s*(?:x|ext\.?|extension)\s*\d", raw)[0]
        if number.startswith("00"):
            number = "+" + number[2:]
        if number.lstrip("(").startswith("+"):
            try:
                parsed = phonenumbers.parse(number, None)
            except phonenumbers.NumberParseException:
                return False, False
            return phonenumbers.is_possible_number(parsed), phonenumbers.is_valid_number(parsed)
        possible = False
        leading_zero = number.lstrip("( ").startswith("0")
        for region in self.regions:
            if region in self._trunk_zero and not leading_zero:
                continue  # written nationally, a number of this region starts with its trunk 0
            if region == "IN" and not (leading_zero or number.lstrip("( ")[:1] in "6789"):
                continue  # only mobiles (6-9…) are written without the 0
            try:
                parsed = phonenumbers.parse(number, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number_for_region(parsed, region):
                return True, True
            possible = possible or phonenumbers.is_possible_number(parsed)
        return possible, False

    def _score(self, text: str, start: int, end: int) -> float:
        raw = text[start:end]
        digits = _digit_count(_EXTENSION.split(raw, maxsplit=1)[0])
        if not 7 <= digits <= 15 or _NOT_PHONE.search(raw) or re.match(r"\s*:\d", text[end : end + 2]):
            return 0.0
        international = raw.lstrip("(").startswith(("+", "00"))
        if not international and (digits >= 12 or len(set(_SEPARATOR_KIND.findall(raw))) > 1):
            return 0.0  # national numbers are shorter; "4.18.0-305" mixes separators
        if _CURRENCY_BEFORE.search(text, max(0, start - 5), start):
            return 0.0
        separators = len(_PHONE_SEPARATOR.findall(raw))
        formatted = international or raw.startswith("(") or separators >= 2
        context = _PHONE_CONTEXT.search(text, max(0, start - 40), start) is not None
        if not (international or context):
            if _ID_BEFORE.search(text, max(0, start - 25), start) or _ID_TAIL.search(raw):
                return 0.0  # "Order 4155552671", "SKU 39737860-34": an id, not a number to call
            if not separators:
                # A bare digit run counts only when it is a valid number of a configured region
                # ("0612345678", "4155552671").
                if not _TRUNK_BARE.match(raw) and len(raw) != 10:
                    return 0.0
                return 0.55 if self._parse(raw)[1] else 0.0
        possible, valid = self._parse(raw)
        if not possible:
            return 0.0
        if valid:
            return 0.9 if formatted or context else 0.8 if separators else 0.0
        if international:
            return 0.7
        if context:
            return 0.6
        return 0.55 if _NANP_SHAPE.match(raw) else 0.0


def _national_prefix(region: str) -> str | None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return None if metadata is None else metadata.national_prefix


def _digit_count(text: str) -> int:
    return sum(map(str.isdigit, text))


class SsnContextRecognizer(LocalRecognizer):
    """A bare nine-digit US SSN, only right after an SSN word (Presidio scores it 0.05 otherwise)."""

    _PATTERN = re.compile(r"(?<![\w-])(\d{3})[ .\-]?(\d{2})[ .\-]?(\d{4})(?![\w-])")

    def __init__(self) -> None:
        super().__init__(supported_entities=["US_SSN"], name="SsnContextRecognizer")

    def load(self) -> None:
        """Nothing to load."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        """SSNs that follow "SSN", "social security" and the like within 40 characters."""
        lower = text.lower()
        if not any(word in lower for word in ("ssn", "social", "soc", "ss#", "tax", "tin")):
            return []
        results = []
        for m in self._PATTERN.finditer(text):
            area, group, serial = m.groups()
            if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
                continue
            if _SSN_CONTEXT.search(text, max(0, m.start() - 40), m.start()):
                results.append(_result("US_SSN", m.start(), m.end(), 0.8, type(self).__name__))
        return results


_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2})?(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?=[0-9A-Fa-f]{0,4}:)(?=[0-9A-Fa-f:]*\d|[0-9A-Fa-f:]*::)(?:[0-9A-Fa-f]{1,4}|:)(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?:%[\w.]+)?(?:/\d{1,3})?(?![\w:])"
)
_VERSION_BEFORE = re.compile(r"(?i)(?:\bv|version\s?|release\s?|build\s?|ver\.?\s?)$")


class IpAddressRecognizer(LocalRecognizer):
    """IPv4 and IPv6 addresses (CIDR suffix allowed), validated by `ipaddress`.

    Presidio's five IP patterns cost ~1 ms per KB; one cheap pattern per family plus the standard
    library parser finds the same addresses. Loopback and unspecified addresses, version numbers
    ("v1.2.3.4", "1.2.3.4.5") and MAC addresses are not reported.
    """

    def __init__(self) -> None:
        super().__init__(supported_entities=["IP_ADDRESS"], name="IpAddressRecognizer")

    def load(self) -> None:
        """Nothing to load."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        """Every IP address in `text`."""
        results = []
        for pattern in (_IPV4, _IPV6) if ":" in text else (_IPV4,):
            for m in pattern.finditer(text):
                try:
                    address = ipaddress.ip_interface(m.group()).ip
                except ValueError:
                    continue
                if address.is_loopback or address.is_unspecified:
                    continue
                if _VERSION_BEFORE.search(text, max(0, m.start() - 8), m.start()):
                    continue
                results.append(_result("IP_ADDRESS", m.start(), m.end(), 0.75, type(self).__name__))
        return results
