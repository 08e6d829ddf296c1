"""Placeholders, pseudonyms and the streaming hold-back window, with a regex stand-in for the detectors."""

from __future__ import annotations

import re

from interlock.guardrails.findings import Finding
from interlock.guardrails.transform import HoldBack, Pseudonyms, rewrite

EMAIL = re.compile(r"[\w.]+@[\w]+\.[a-z]{2,}")
CARD = re.compile(r"\b\d{4}(?: \d{4}){3}\b")


def scan(text: str) -> list[Finding]:
    found = [Finding("EMAIL_ADDRESS", m.start(), m.end(), 1.0, "t") for m in EMAIL.finditer(text)]
    found += [Finding("CREDIT_CARD", m.start(), m.end(), 1.0, "t") for m in CARD.finditer(text)]
    return sorted(found, key=lambda f: f.start)


def test_pseudonyms_are_stable_per_value_and_restore() -> None:
    p = Pseudonyms()
    a = p.placeholder("EMAIL_ADDRESS", "ann@example.com")
    b = p.placeholder("EMAIL_ADDRESS", "bob@example.com")
    assert (a, b) == ("<EMAIL_ADDRESS_1>", "<EMAIL_ADDRESS_2>")
    assert p.placeholder("EMAIL_ADDRESS", "ann@example.com") == a
    assert p.restore(f"write to {b} and {a}; <EMAIL_ADDRESS_9> stays") == (
        "write to bob@example.com and ann@example.com; <EMAIL_ADDRESS_9> stays"
    )
    assert "example" not in repr(p)


def test_restore_inside_json_escapes_the_value() -> None:
    p = Pseudonyms()
    ph = p.placeholder("PERSON", 'Ann "the boss"')
    assert p.restore(f'{{"to": "{ph}"}}', json_string=True) == '{"to": "Ann \\"the boss\\""}'


def test_rewrite_replaces_only_what_the_callback_names() -> None:
    text = "mail ann@example.com, card 4111 1111 1111 1111."
    out = rewrite(text, scan(text), lambda f, v: "<CARD>" if f.entity == "CREDIT_CARD" else None)
    assert out == "mail ann@example.com, card <CARD>."


def _stream(pieces: list[str], action: dict[str, str], hold: int, p: Pseudonyms | None = None) -> tuple[str, HoldBack]:
    hb = HoldBack(scan, action.get, p, hold)
    out = "".join(hb.feed(piece) for piece in pieces)
    return out + hb.feed("", final=True), hb


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def test_holdback_redacts_an_entity_split_across_every_chunk_size() -> None:
    text = "Your card 4111 1111 1111 1111 is on file; mail ann@example.com for help."
    for size in (1, 2, 3, 5, 8, 13, 100):
        out, hb = _stream(_pieces(text, size), {"CREDIT_CARD": "redact"}, hold=32)
        assert out == "Your card <CREDIT_CARD> is on file; mail ann@example.com for help.", size
        assert [f.entity for f in hb.findings] == ["CREDIT_CARD"]


def test_holdback_block_sends_nothing_of_the_entity() -> None:
    text = "Sure. The number is 4111 1111 1111 1111 and more text after it."
    for size in (1, 4, 7, 64):
        hb = HoldBack(scan, {"CREDIT_CARD": "block"}.get, None, 32)
        sent = ""
        for piece in _pieces(text, size):
            sent += hb.feed(piece)
            if hb.blocked:
                break
        else:
            sent += hb.feed("", final=True)
        assert hb.blocked is not None and hb.blocked.entity == "CREDIT_CARD"
        assert sent == "Sure. The number is ", size
        assert hb.feed("more") == ""


def test_holdback_keeps_the_window_and_releases_the_rest() -> None:
    hb = HoldBack(scan, {"CREDIT_CARD": "redact"}.get, None, 10)
    assert hb.feed("abcdefghijklmnopqrst") == "abcdefghij"
    assert hb.pending == 10
    assert hb.feed("", final=True) == "klmnopqrst"


def test_holdback_restores_a_placeholder_split_across_chunks() -> None:
    p = Pseudonyms()
    ph = p.placeholder("EMAIL_ADDRESS", "ann@example.com")
    text = f"I will write to {ph} today, and to {ph} again tomorrow morning."
    for size in (1, 3, 6, 11):
        out, _ = _stream(_pieces(text, size), {}, hold=0, p=p)
        assert out == text.replace(ph, "ann@example.com"), size


def test_log_action_changes_nothing() -> None:
    text = "card 4111 1111 1111 1111 and ann@example.com"
    out, hb = _stream(_pieces(text, 3), {"CREDIT_CARD": "log", "EMAIL_ADDRESS": "log"}, hold=40)
    assert out == text
    assert sorted(f.entity for f in hb.findings) == ["CREDIT_CARD", "EMAIL_ADDRESS"]


def test_quiet_text_streams_a_word_behind_and_candidates_are_held() -> None:
    could = lambda word: any(c.isdigit() or c == "@" for c in word)  # noqa: E731
    hb = HoldBack(scan, {"CREDIT_CARD": "block", "EMAIL_ADDRESS": "redact"}.get, None, 64, could_match=could)
    assert hb.feed("Hello there my ") == "Hello there my "
    assert hb.feed("frie") == ""  # the last word may still grow
    assert hb.feed("nd, card 4111 ") == "friend, card "  # a word that could start an entity is held
    assert hb.feed("1111 1111 1111 is") == ""  # held from the card's first group: nothing of it goes
    assert hb.feed(" mine.", final=True) == ""
    assert hb.blocked is not None and hb.blocked.entity == "CREDIT_CARD"
    hb2 = HoldBack(scan, {"EMAIL_ADDRESS": "redact"}.get, None, 64, could_match=could)
    out = "".join(hb2.feed(p) for p in ["write ", "ann.smith", "@exam", "ple.com ", "now ", "please"])
    assert out + hb2.feed("", final=True) == "write <EMAIL_ADDRESS> now please"
