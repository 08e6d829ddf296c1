"""What one request's guardrails found and did: counts by entity type and action, never values."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from interlock.guardrails.policy import ACTION_RANK


@dataclass(slots=True)
class Verdict:
    """What one request's guardrails found and did, by direction: counts per (entity, action)."""

    input: Counter[tuple[str, str]] = field(default_factory=Counter)
    output: Counter[tuple[str, str]] = field(default_factory=Counter)
    untrusted: Counter[str] = field(default_factory=Counter)

    def strongest(self) -> str | None:
        """The strongest input action taken."""
        actions = [a for (_, a) in self.input]
        return max(actions, key=ACTION_RANK.__getitem__) if actions else None


def describe(counts: Counter[str]) -> str:
    """`CREDIT_CARD (2), EMAIL_ADDRESS (1)`: types and counts, never values."""
    return ", ".join(f"{entity} ({n})" for entity, n in sorted(counts.items()))


def flat(counts: Counter[tuple[str, str]]) -> str:
    """`CREDIT_CARD:restrict:1,EMAIL_ADDRESS:pseudonymise:2`."""
    return ",".join(f"{e}:{a}:{n}" for (e, a), n in sorted(counts.items()))
