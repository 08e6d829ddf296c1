"""PiiDetector: each entity in realistic text with its exact span; checksum-broken look-alikes ignored."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from interlock.guardrails.detectors.pii import PiiDetector
from interlock.guardrails.detectors.recognizers import luhn_valid


def luhn_complete(prefix: str, length: int) -> str:
    """`prefix` padded with 7s to `length` digits, with a valid Luhn check digit."""
    body = (prefix + "7" * length)[: length - 1]
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def group(number: str, sizes: tuple[int, ...], sep: str = " ") -> str:
    out, i = [], 0
    for size in sizes:
        out.append(number[i : i + size])
        i += size
    if i < len(number):
        out.append(number[i:])
    return sep.join(part for part in out if part)


@pytest.fixture(scope="module")
def pii() -> PiiDetector:
    return PiiDetector()


def found(detector: PiiDetector, text: str, entity: str) -> list[str]:
    return [text[f.start : f.end] for f in detector.scan(text) if f.entity == entity]


CARDS = [
    "4111111111111111",  # Visa 16
    "4222222222222",  # Visa 13
    luhn_complete("4", 19),  # Visa 19
    "5555555555554444",  # Mastercard
    "2223003122003222",  # Mastercard 2-series
    "378282246310005",  # Amex
    "30569309025904",  # Diners 14
    "6011111111111117",  # Discover
    "3530111333300000",  # JCB
    "6200000000000005",  # UnionPay
    luhn_complete("62", 19),  # UnionPay 19
    "6759649826438453",  # Maestro 16
    luhn_complete("6304", 12),  # Maestro 12
    luhn_complete("5018", 19),  # Maestro 19
    luhn_complete("2200", 16),  # Mir
]


@pytest.mark.parametrize("number", CARDS)
@pytest.mark.parametrize("layout", ["plain", "4-4-4-4 spaces", "dashes", "amex 4-6-5"])
def test_cards_of_every_brand_and_layout(pii: PiiDetector, number: str, layout: str) -> None:
    written = {
        "plain": number,
        "4-4-4-4 spaces": group(number, (4, 4, 4, 4)),
        "dashes": group(number, (4, 4, 4, 4), "-"),
        "amex 4-6-5": group(number, (4, 6, 5)),
    }[layout]
    text = f"Hi, please charge {written}, expiry 09/27, and confirm by e-mail."
    assert found(pii, text, "CREDIT_CARD") == [written]


@pytest.mark.parametrize("number", CARDS)
def test_luhn_broken_cards_do_not_fire(pii: PiiDetector, number: str) -> None:
    broken = number[:-1] + str((int(number[-1]) + 1) % 10)
    text = f"Card number {group(broken, (4, 4, 4, 4))} was declined."
    assert pii.scan(text) == []


def test_card_followed_by_cvv_and_long_ids_ignored(pii: PiiDetector) -> None:
    text = "card 4111 1111 1111 1111 2027 12, CVV 123, tracking id 4111111111111111111111111"
    assert found(pii, text, "CREDIT_CARD") == ["4111 1111 1111 1111"]


IBANS = [
    "DE89 3704 0044 0532 0130 00",
    "GB82 WEST 1234 5698 7654 32",
    "FR14 2004 1010 0505 0001 3M02 606",
    "NL91 ABNA 0417 1643 00",
    "ES91 2100 0418 4502 0005 1332",
    "IT60 X054 2811 1010 0000 0123 456",
    "BE68 5390 0754 7034",
    "CH93 0076 2011 6238 5295 7",
    "PL61 1090 1014 0000 0712 1981 2874",
]


@pytest.mark.parametrize("iban", IBANS)
@pytest.mark.parametrize("spaced", [True, False])
def test_iban_print_and_electronic_format(pii: PiiDetector, iban: str, spaced: bool) -> None:
    written = iban if spaced else iban.replace(" ", "")
    text = f"Bitte überweisen Sie den Betrag auf {written} bis Freitag."
    assert found(pii, text, "IBAN_CODE") == [written]


@pytest.mark.parametrize("iban", IBANS)
def test_mod97_broken_ibans_do_not_fire(pii: PiiDetector, iban: str) -> None:
    digits = iban.replace(" ", "")
    broken = digits[:2] + f"{(int(digits[2:4]) + 1) % 100:02d}" + digits[4:]
    assert found(pii, f"IBAN {broken} please", "IBAN_CODE") == []


@pytest.mark.parametrize(
    "email", ["jane.doe@example.com", "j.o'neil+tag@mail.example.co.uk", "ops-team@sub.example.de", "x_y@ex.io"]
)
def test_email(pii: PiiDetector, email: str) -> None:
    assert found(pii, f"Write to {email}, thanks.", "EMAIL_ADDRESS") == [email]


def test_email_without_public_suffix_is_ignored(pii: PiiDetector) -> None:
    assert found(pii, "ssh admin@build-server.internal now", "EMAIL_ADDRESS") == []


PHONES = [
    "+1 (415) 555-2671",
    "(415) 555-2671",
    "415.555.2671",
    "415-555-2671 ext. 204",
    "+1-202-555-0143",
    "001-415-555-2671",
    "+44 20 7946 0958",
    "020 7946 0958",
    "07700 900123",
    "+49 30 12345678",
    "+49 (0)30 1234567",
    "030 12345678",
    "0171 1234567",
    "+33 1 23 45 67 89",
    "01 23 45 67 89",
    "+91 98765 43210",
    "+34 612 34 56 78",
    "+39 06 1234 5678",
    "+31 20 123 4567",
    "+61 2 9374 4000",
]


@pytest.mark.parametrize("phone", PHONES)
def test_phone_numbers_in_many_formats(pii: PiiDetector, phone: str) -> None:
    text = f"Thanks for your order. Our team will reach you at {phone} tomorrow."
    assert found(pii, text, "PHONE_NUMBER") == [phone]


def test_bare_phone_digits_need_a_phone_word_or_a_trunk_zero(pii: PiiDetector) -> None:
    assert found(pii, "Call me on 9876543210 after six.", "PHONE_NUMBER") == ["9876543210"]
    assert found(pii, "Reference 9876543210 was archived.", "PHONE_NUMBER") == []
    assert found(pii, "Order 9876543210 shipped.", "PHONE_NUMBER") == []
    # A valid number counts on its own, unless an id word precedes it.
    assert found(pii, "She wrote 0612345678 on the form.", "PHONE_NUMBER") == ["0612345678"]
    assert found(pii, "She wrote 4155552671 on the form.", "PHONE_NUMBER") == ["4155552671"]
    assert found(pii, "Invoice no. 0612345678 was archived.", "PHONE_NUMBER") == []
    assert found(pii, "She wrote 0000345678 on the form.", "PHONE_NUMBER") == []


@pytest.mark.parametrize(
    "text",
    [
        "Released on 2024-01-15 10:23:45 UTC",
        "due 15/01/2024, paid 15.01.2024",
        "Total: $1,234,567.89 (EUR 1.234.567,89)",
        "Order #20240115123 shipped",
        "server 203.0.113.7 answered",
        "build 4.18.0-305.el8.x86_64",
        "rows 1234567 to 2345678",
        "2026-07-08T17:58:01.106027 INFO [db-1] took 5ms",
        "pi is 3.14159265, e is 2,71828183",
    ],
)
def test_phone_look_alikes(pii: PiiDetector, text: str) -> None:
    assert found(pii, text, "PHONE_NUMBER") == []


@pytest.mark.parametrize("ssn", ["536-90-4399", "536 90 4399"])
def test_ssn(pii: PiiDetector, ssn: str) -> None:
    assert found(pii, f"Employee SSN: {ssn}", "US_SSN") == [ssn]


def test_bare_ssn_needs_context_and_invalid_areas_ignored(pii: PiiDetector) -> None:
    assert found(pii, "social security number 536904399 on file", "US_SSN") == ["536904399"]
    assert found(pii, "invoice 536904399 on file", "US_SSN") == []
    assert found(pii, "SSN 000-12-3456 or 666-12-3456 or 912-12-3456", "US_SSN") == []


@pytest.mark.parametrize(
    "ip", ["203.0.113.7", "8.8.8.8", "10.1.2.3", "2001:db8::1", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"]
)
def test_ip_addresses(pii: PiiDetector, ip: str) -> None:
    assert found(pii, f"Login from {ip} at noon", "IP_ADDRESS") == [ip]


@pytest.mark.parametrize(
    "text",
    [
        "version 1.2.3.4",
        "v10.0.0.1 released",
        "Python 3.11.4.1.2",
        "999.1.1.1",
        "localhost 127.0.0.1",
        "MAC 00:1a:2b:3c:4d:5e",
    ],
)
def test_ip_look_alikes(pii: PiiDetector, text: str) -> None:
    assert found(pii, text, "IP_ADDRESS") == []


def test_options_entities_threshold_and_validation() -> None:
    only_email = PiiDetector(entities=["EMAIL_ADDRESS"])
    assert only_email.entities == frozenset({"EMAIL_ADDRESS"})
    text = "mail a@example.com or card 4111 1111 1111 1111"
    assert [f.entity for f in only_email.scan(text)] == ["EMAIL_ADDRESS"]
    strict = PiiDetector(entities=["PHONE_NUMBER"], score_threshold=0.8, phone_regions=["US"])
    assert strict.scan("call (123) 456-7890") == []  # a possible but not valid number: scores 0.6
    with pytest.raises(ValueError, match="DRIVER_LICENSE"):
        PiiDetector(entities=["DRIVER_LICENSE"])
    with pytest.raises(ValueError, match="XX"):
        PiiDetector(phone_regions=["XX"])


def test_fast_path_and_no_values_in_repr_or_logs(pii: PiiDetector, caplog: pytest.LogCaptureFixture) -> None:
    assert not pii.could_match("No digits, no at-signs, nothing here.")
    assert pii.scan("No digits, no at-signs, nothing here.") == []
    caplog.set_level(logging.DEBUG)
    text = "card 4111 1111 1111 1111, mail jane@example.com, IBAN DE89370400440532013000"
    findings = pii.scan(text)
    assert len(findings) == 3
    for value in ("4111 1111 1111 1111", "jane@example.com", "DE89370400440532013000"):
        assert value not in repr(findings)
        assert value not in caplog.text


def test_scan_is_thread_safe(pii: PiiDetector) -> None:
    texts = [f"card {c} phone +44 20 7946 0958 mail u{i}@example.org" for i, c in enumerate(CARDS)] * 4
    expected = [pii.scan(t) for t in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(pii.scan, texts)) == expected


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("tel:+14155552671", "PHONE_NUMBER", "+14155552671"),
        ("(+44) 20 7946 0958 is the desk", "PHONE_NUMBER", "(+44) 20 7946 0958"),
        ("Numéro : 06.12.34.56.78", "PHONE_NUMBER", "06.12.34.56.78"),
        ("bel me op 06-12345678", "PHONE_NUMBER", "06-12345678"),
        ("iban de89 3704 0044 0532 0130 00 ok", "IBAN_CODE", "de89 3704 0044 0532 0130 00"),
        ("email <john.smith@example.com>", "EMAIL_ADDRESS", "john.smith@example.com"),
        ("card=4111111111111111&x=1", "CREDIT_CARD", "4111111111111111"),
        ("host 203.0.113.7:8080", "IP_ADDRESS", "203.0.113.7"),
        ("[2001:db8::1]:443", "IP_ADDRESS", "2001:db8::1"),
    ],
)
def test_formats_seen_in_the_wild(pii: PiiDetector, text: str, entity: str, value: str) -> None:
    assert found(pii, text, entity) == [value]


def test_pre_check_never_hides_a_finding(pii: PiiDetector) -> None:
    texts = [*PHONES, *IBANS, *CARDS, "fe80::1", "dead:beef::1", "a@b.io", "٠٦١٢٣٤٥٦٧٨", "no digits"]
    for text in texts:
        raw = pii._engine.analyze(text=text, language="en", score_threshold=0.5)
        assert pii.could_match(text) or not raw


def test_long_texts_are_scanned_in_windows_without_losing_anything() -> None:
    """Presidio runs on windows around candidates: an entity anywhere in a long text, with its cue word, is
    found with the same span and type as in a short one, and prose far from any candidate is not scanned."""
    from interlock.guardrails.detectors.pii import WINDOW, PiiDetector, _windows

    detector = PiiDetector()
    prose = "The committee reviewed the proposal and asked for a revised plan before the spring meeting. " * 60
    for value in ("Tel. +44 20 7946 0958", "card 4111 1111 1111 1111", "ann.smith@example.com", "SSN 536-90-4399"):
        short = detector.scan(value)
        assert short, value
        for at in (0, 1000, len(prose) // 2, len(prose) - 1):
            text = prose[:at] + " " + value + " " + prose[at:]
            offset = at + 1
            found = [(f.entity, f.start - offset, f.end - offset) for f in detector.scan(text)]
            assert found == [(f.entity, f.start, f.end) for f in short], (value, at)
    windows = _windows(prose + " mail ann.smith@example.com " + prose)
    assert len(windows) == 1 and windows[0][1] - windows[0][0] < 2 * WINDOW + 80
