"""Detector accuracy: per-entity recall/precision on generated values, look-alikes, and benign documents.

Values come from Faker in several locales and are written in several layouts (grouped cards, IBANs in
print format, phone numbers reformatted beyond Faker's own templates), then placed in sentence
templates. Look-alikes (Luhn-broken cards, mod-97-broken IBANs, invalid SSN areas) must not fire.
A benign corpus (code, logs, base64, UUIDs, hashes, timestamps, versions, order numbers, prose) gives
the share of benign documents flagged. Fixed seed, bounded counts: the same run gives the same numbers.

    .venv/bin/python bench/guardrails/accuracy.py [--per-entity 400] [--seed 13] [--baseline]

`--baseline` also runs plain Presidio (its default pattern recognizers on NoOpNlpEngine) on the same
documents, to show what our recognizers add.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from faker import Faker

from interlock.guardrails.detectors.recognizers import luhn_valid
from interlock.guardrails.scanner import DetectorOptions, Scanner, build_scanner

LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL", "en_IN"]
CARD_TYPES = ["visa13", "visa16", "visa19", "mastercard", "amex", "discover", "diners", "jcb15", "jcb16", "maestro"]
TEMPLATES = [
    "Hi team, the customer said: {v}. Can you check it before Monday?",
    "{v}",
    "Ticket #4821 - details: {v} (reported 2024-03-02)",
    "Bonjour, voici les informations demandées : {v}. Merci !",
    "Hallo, anbei die Daten: {v}. Viele Grüße",
    "Summarise this email:\n> From the client\n> {v}\n> Regards",
    '{{"customer": {{"note": "{v}"}}}}',
    "- name: Jane\n  value: {v}\n  status: pending",
]
PHONE_WORDS = ["Call me on", "Phone:", "You can reach me at", "Tel.", "mobile", "Telefon:", "tél :", "WhatsApp"]


def group(digits: str, sizes: tuple[int, ...], sep: str) -> str:
    out, i = [], 0
    for size in sizes:
        if i >= len(digits):
            break
        out.append(digits[i : i + size])
        i += size
    if i < len(digits):
        out.append(digits[i:])
    return sep.join(out)


def card_layouts(rng: random.Random, digits: str) -> str:
    sizes = {15: (4, 6, 5), 14: (4, 6, 4)}.get(len(digits), (4, 4, 4, 4, 4))
    return rng.choice([digits, group(digits, (4,) * 5, " "), group(digits, (4,) * 5, "-"), group(digits, sizes, " ")])


def phone_layouts(rng: random.Random, fake: Faker) -> str:
    """Faker's own formats, plus the same digits regrouped the way people write them."""
    raw = fake.phone_number()
    if rng.random() < 0.5:
        return raw
    msisdn = fake.msisdn() if fake.locales[0] in ("en_US",) else None
    if msisdn:  # en_US msisdn is 13 digits; take a NANP number from it
        d = msisdn[-10:]
        return rng.choice([f"({d[:3]}) {d[3:6]}-{d[6:]}", f"{d[:3]}.{d[3:6]}.{d[6:]}", f"+1 {d[:3]} {d[3:6]} {d[6:]}"])
    return raw


def positives(fake: Faker, rng: random.Random, entity: str) -> tuple[str, str]:
    """(value as written, context prefix) for one generated value of `entity`."""
    if entity == "CREDIT_CARD":
        return card_layouts(rng, fake.credit_card_number(card_type=rng.choice(CARD_TYPES))), ""
    if entity == "IBAN_CODE":
        iban = fake.iban()
        return (group(iban, (4,) * 9, " ") if rng.random() < 0.5 else iban), ""
    if entity == "EMAIL_ADDRESS":
        return rng.choice([fake.email(), fake.company_email(), fake.free_email(), fake.ascii_safe_email()]), ""
    if entity == "PHONE_NUMBER":
        return phone_layouts(rng, fake), rng.choice(PHONE_WORDS) + " " if rng.random() < 0.7 else ""
    if entity == "US_SSN":
        ssn = fake.ssn()
        return (ssn if rng.random() < 0.7 else ssn.replace("-", " ")), rng.choice(["SSN ", "SSN: ", ""])
    if entity == "IP_ADDRESS":
        return (fake.ipv4_public() if rng.random() < 0.6 else fake.ipv6()), rng.choice(["from ", "IP ", ""])
    raise ValueError(entity)


def look_alikes(fake: Faker, rng: random.Random) -> Iterator[tuple[str, str]]:
    """(entity it imitates, text) that must not fire."""
    for _ in range(200):
        digits = fake.credit_card_number(card_type=rng.choice(CARD_TYPES))
        broken = digits[:-1] + str((int(digits[-1]) + rng.randint(1, 9)) % 10)
        assert not luhn_valid(broken)
        yield "CREDIT_CARD", f"My card {card_layouts(rng, broken)} was declined."
    for _ in range(200):
        iban = fake.iban()
        broken = iban[:2] + f"{(int(iban[2:4]) + rng.randint(1, 96)) % 97 + 2:02d}"[-2:] + iban[4:]
        if broken[2:4] == iban[2:4]:
            continue
        yield "IBAN_CODE", f"IBAN {group(broken, (4,) * 9, ' ') if rng.random() < 0.5 else broken} bitte prüfen."
    for area in ("000", "666", "900", "987"):
        yield "US_SSN", f"SSN {area}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"


def benign_corpus(fake: Faker, rng: random.Random, count: int) -> Iterator[tuple[str, str]]:
    """(kind, document) with nothing sensitive in it."""
    makers: dict[str, Callable[[], str]] = {
        "prose": lambda: fake.paragraph(nb_sentences=6),
        "code": lambda: rng.choice(CODE).format(n=rng.randint(2, 999), h=uuid.UUID(int=rng.getrandbits(128)).hex),
        "log": lambda: "\n".join(
            f"{fake.date_time_this_year().isoformat()} {rng.choice(['INFO', 'WARN', 'DEBUG'])} "
            f"[{rng.choice(['worker', 'api', 'db'])}-{rng.randint(1, 9)}] "
            f"request_id={uuid.UUID(int=rng.getrandbits(128))} "
            f"took {rng.randint(1, 9999)}ms status={rng.choice([200, 201, 404, 500])} bytes={rng.randint(10, 99999)}"
            for _ in range(4)
        ),
        "base64": lambda: "attachment: " + base64.b64encode(rng.randbytes(rng.randint(30, 300))).decode(),
        "uuid": lambda: f"ids: {uuid.UUID(int=rng.getrandbits(128))}, {uuid.UUID(int=rng.getrandbits(128))}",
        "hash": lambda: (
            f"sha256 {hashlib.sha256(rng.randbytes(8)).hexdigest()} "
            f"md5 {hashlib.md5(rng.randbytes(8), usedforsecurity=False).hexdigest()}"
        ),
        "timestamp": lambda: (
            f"created {fake.iso8601()} updated {fake.unix_time():.0f} at {fake.time()} on {fake.date()}"
        ),
        "version": lambda: (
            f"upgrade from {rng.randint(0, 20)}.{rng.randint(0, 30)}.{rng.randint(0, 99)} "
            f"to v{rng.randint(0, 20)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}-rc{rng.randint(1, 9)} "
            f"(build {rng.randint(1000, 99999)})"
        ),
        "order": lambda: (
            f"Order #{rng.randint(10**6, 10**10)} for {rng.randint(1, 9)} items, total €{rng.randint(1, 9999)},"
            f"{rng.randint(10, 99)}; invoice INV-{rng.randint(2019, 2025)}-{rng.randint(1, 99999):05d}, "
            f"qty {rng.randint(1, 500)}"
        ),
        "numbers": lambda: (
            "Q3 revenue "
            + ", ".join(f"{rng.randint(1, 999)},{rng.randint(100, 999)}" for _ in range(5))
            + f" units; page {rng.randint(1, 400)} of {rng.randint(400, 900)}"
        ),
        "ids": lambda: (
            f"{rng.choice(['Order', 'Invoice', 'Account', 'Ticket', 'Customer ID', 'Ref', 'Tracking no.'])} "
            f"{rng.randint(10**9, 10**10 - 1)} was {rng.choice(['shipped', 'closed', 'updated'])}; "
            f"batch #{rng.randint(10**6, 10**10)}, SKU {rng.randint(10**5, 10**8)}-{rng.randint(10, 99)}"
        ),
        "markdown": lambda: (
            f"## {fake.sentence()}\n\n- {fake.sentence()}\n- see [the docs](https://docs.example.com/"
            f"{fake.slug()}) and ![chart](https://img.example.com/{fake.slug()}.png)\n"
        ),
    }
    kinds = list(makers)
    for i in range(count):
        kind = kinds[i % len(kinds)]
        yield kind, makers[kind]()


CODE = [
    "def handler(event, context):\n    items = fetch(limit={n})\n    return {{'count': len(items), 'id': '{h}'}}",
    "for (let i = 0; i < {n}; i++) {{ total += prices[i] * 1.2; }}\nconsole.log(`done ${{total}}`);",
    "SELECT id, created_at FROM orders WHERE total > {n} AND status = 'open' ORDER BY id LIMIT 50;",
    "docker run -p 8080:80 -e WORKERS={n} nginx:1.25.3\nkubectl get pods -n prod | grep api",
    'if err != nil {{\n\treturn fmt.Errorf("read %s: %w", path, err)\n}}\nbuf := make([]byte, {n})',
    "password = os.environ['DB_PASSWORD']\ntoken = get_token(user)\napi_key = settings.api_key",
    "git commit -m 'fix: retry {n} times'\n# commit {h}\nnpm install lodash@4.17.21",
    "x = np.linspace(0, 1, {n})\ny = np.sin(2 * np.pi * x) + 0.1 * rng.normal(size={n})",
]
ENTITIES = ["CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "IP_ADDRESS"]
SSN_LOCALES = ["en_US"]
IBAN_LOCALES = ["en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL"]


def locales_for(entity: str) -> list[str]:
    return {"US_SSN": SSN_LOCALES, "IBAN_CODE": IBAN_LOCALES}.get(entity, LOCALES)


def run(scan: Callable[[str], list[tuple[str, int, int]]], per_entity: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    fakers = {loc: Faker(loc) for loc in LOCALES}
    for i, f in enumerate(fakers.values()):
        f.seed_instance(seed + i)
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    fired: Counter[str] = Counter()  # findings of each entity
    wrong: Counter[str] = Counter()  # findings of each entity not on a planted value
    misses: dict[str, list[str]] = defaultdict(list)
    for entity in ENTITIES:
        locs = locales_for(entity)
        for i in range(per_entity):
            fake = fakers[locs[i % len(locs)]]
            value, prefix = positives(fake, rng, entity)
            template = rng.choice(TEMPLATES)
            text = template.format(v=prefix + value)
            start = text.index(prefix + value) + len(prefix)
            end = start + len(value)
            findings = scan(text)
            totals[entity] += 1
            if any(e == entity and s <= start + 1 and t >= end - 1 for e, s, t in findings):
                hits[entity] += 1
            elif len(misses[entity]) < 8:
                misses[entity].append(value)
            for e, s, t in findings:
                fired[e] += 1
                if not (s < end and t > start) or e != entity:
                    wrong[e] += 1
    lookalike_total: Counter[str] = Counter()
    lookalike_fired: Counter[str] = Counter()
    for entity, text in look_alikes(fakers["de_DE"], rng):
        lookalike_total[entity] += 1
        if any(e == entity for e, _, _ in scan(text)):
            lookalike_fired[entity] += 1
    benign_total: Counter[str] = Counter()
    benign_flagged: Counter[str] = Counter()
    benign_entities: Counter[str] = Counter()
    for kind, doc in benign_corpus(fakers["en_US"], rng, 1200):
        benign_total[kind] += 1
        found = scan(doc)
        if found:
            benign_flagged[kind] += 1
            benign_entities.update(e for e, _, _ in found)
    return {
        "recall": {e: hits[e] / totals[e] for e in ENTITIES},
        "precision": {e: (fired[e] - wrong[e]) / fired[e] if fired[e] else 1.0 for e in fired},
        "misses": dict(misses),
        "lookalikes": {e: (lookalike_fired[e], lookalike_total[e]) for e in lookalike_total},
        "benign": (sum(benign_flagged.values()), sum(benign_total.values())),
        "benign_by_kind": {k: (benign_flagged[k], benign_total[k]) for k in benign_total},
        "benign_entities": dict(benign_entities),
    }


def ours() -> Callable[[str], list[tuple[str, int, int]]]:
    scanner: Scanner = build_scanner(DetectorOptions())
    return lambda text: [(f.entity, f.start, f.end) for f in scanner.scan(text)]


def presidio_baseline() -> Callable[[str], list[tuple[str, int, int]]]:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine

    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"])
    registry.remove_recognizer("SpacyRecognizer")  # needs a spaCy model; NoOpNlpEngine has none
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    nlp.load()
    engine = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])

    def scan(text: str) -> list[tuple[str, int, int]]:
        results = engine.analyze(text=text, language="en", entities=ENTITIES)  # Presidio default threshold
        return [(r.entity_type, r.start, r.end) for r in results]

    return scan


def report(name: str, result: dict[str, object]) -> None:
    print(f"## {name}")
    recall = result["recall"]
    precision = result["precision"]
    assert isinstance(recall, dict) and isinstance(precision, dict)
    print("| entity | recall | precision |")
    print("|---|---|---|")
    for e in ENTITIES:
        print(f"| {e} | {recall[e]:.3f} | {precision.get(e, 1.0):.3f} |")
    print("look-alikes fired:", {e: f"{a}/{b}" for e, (a, b) in result["lookalikes"].items()})  # type: ignore[attr-defined]
    flagged, total = result["benign"]  # type: ignore[misc]
    print(f"benign documents flagged: {flagged}/{total} = {flagged / total:.2%}")
    print("benign by kind:", result["benign_by_kind"], "entities:", result["benign_entities"])
    print("sample misses:", result["misses"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-entity", type=int, default=400)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args()
    report("interlock detectors (default set)", run(ours(), args.per_entity, args.seed))
    if args.baseline:
        report(
            "baseline: Presidio predefined recognizers, NoOpNlpEngine",
            run(presidio_baseline(), args.per_entity, args.seed),
        )


if __name__ == "__main__":
    main()
