"""Scan latency of the default detector set: p50/p95 for 1 KB and 16 KB prompts.

Three kinds of text per size: `fast-path` (prose with no digit, '@', key prefix or key word: every
detector is skipped), `mixed` (prose, code and logs with digits but nothing sensitive: every detector
runs), and `entities` (the mixed text with a card, an IBAN, an e-mail, a phone number and an API key
planted per KB). Baseline in the same run: plain Presidio (predefined recognizers, NoOpNlpEngine).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/guardrails/latency.py [--runs 300] [--baseline]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from interlock.guardrails.scanner import build_scanner

PROSE = (
    "Could you help me rewrite the following paragraph so that it sounds friendlier and clearer? "
    "Our team has been working hard on the new onboarding flow, and we would love your feedback on "
    "whether the steps make sense for a first-time visitor. Please keep the tone warm but brief, "
    "avoid jargon, and suggest a title. The audience is small shop owners who are busy and skeptical. "
)
MIXED = (
    "Here is the error from the worker, run 17 of 40 at 2024-05-02 14:03:11:\n"
    "    File \"app/jobs.py\", line 212, in retry\n      raise Timeout(f'after {n} tries')\n"
    "The queue had 1,245 items and the p95 was 830 ms (target 500). We upgraded from 3.11.4 to 3.12.1. "
    "Order #5521873 and invoice INV-2024-00412 were affected; see ticket 8841. "
)
ENTITIES = (
    "Customer Jane wrote: charge my card 4111 1111 1111 1111 and refund to DE89 3704 0044 0532 0130 00; "
    "reach me at jane.doe@example.com or +44 20 7946 0958. My key was sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34. "
)


def text_of(kind: str, size: int) -> str:
    if kind == "fast-path":
        base = PROSE
    elif kind == "mixed":
        base = PROSE + MIXED
    else:
        base = PROSE + MIXED + ENTITIES
    out = (base * (size // len(base) + 1))[:size]
    return out


def measure(scan: Callable[[str], object], text: str, runs: int) -> tuple[float, float, float, float]:
    """Wall-clock and thread-CPU p50/p95 in ms (CPU time leaves out preemption on a shared machine)."""
    for _ in range(10):
        scan(text)
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.thread_time()
        scan(text)
        cpu.append((time.thread_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    wall.sort()
    cpu.sort()
    p95 = int(len(wall) * 0.95) - 1
    return statistics.median(wall), wall[p95], statistics.median(cpu), cpu[p95]


def presidio_baseline() -> Callable[[str], object]:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine

    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"])
    registry.remove_recognizer("SpacyRecognizer")  # needs a spaCy model; NoOpNlpEngine has none
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    nlp.load()
    engine = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
    entities = ["CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "IP_ADDRESS"]
    return lambda text: engine.analyze(text=text, language="en", entities=entities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args()
    random.seed(13)
    start = time.perf_counter()
    scanner = build_scanner()
    print(f"build default detectors: {(time.perf_counter() - start) * 1000:.0f} ms (once, at startup)")
    scans: list[tuple[str, Callable[[str], object]]] = [("interlock default", scanner.scan)]
    if args.baseline:
        scans.append(("baseline: Presidio predefined, 6 entities", presidio_baseline()))
    print("| scanner | text | size | findings | p50 ms | p95 ms | CPU p50 ms | CPU p95 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name, scan in scans:
        for size in (1024, 16 * 1024):
            for kind in ("fast-path", "mixed", "entities"):
                text = text_of(kind, size)
                runs = args.runs if size == 1024 else max(30, args.runs // 5)
                p50, p95, cpu50, cpu95 = measure(scan, text, runs)
                result = scan(text)
                count = len(result) if isinstance(result, list) else "-"
                cells = [name, kind, f"{size // 1024} KB", str(count)] + [f"{v:.3f}" for v in (p50, p95, cpu50, cpu95)]
                print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
