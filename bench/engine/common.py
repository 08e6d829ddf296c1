"""Shared pieces of the engine benchmarks: prompts, percentiles, machine description."""

from __future__ import annotations

import os
import platform
import subprocess
import time

TOPICS = [
    "a dragon",
    "the sea",
    "a lighthouse keeper",
    "a robot",
    "a lost cat",
    "the moon",
    "a baker",
    "a mountain village",
    "a train journey",
    "a storm",
    "a library",
    "a garden",
    "a clockmaker",
    "a desert",
    "a violin",
    "a forest",
]


def story_prompt(i: int) -> str:
    """A prompt whose greedy answer is longer than 32 tokens."""
    return f"Write a long story about {TOPICS[i % len(TOPICS)]}."


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def machine() -> str:
    """CPU model name and core count, as `lscpu` reports them."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration, subprocess.SubprocessError):
        name = platform.processor() or "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


def load_average() -> str:
    """The 1-minute load average: the machine is shared, so results carry it."""
    return f"{os.getloadavg()[0]:.2f}"


def stamp() -> str:
    """Today's date and time, UTC."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
