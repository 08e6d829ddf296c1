"""Variants of an alias: which variant answers a request, and which shadow it.

An alias with `variants` is served by other aliases, each with a weight (its share of the traffic).
The choice is sticky: requests of one run (`x-interlock-run-id`), or else of one key, land on the same
variant for as long as the weights stay put, so an agent's steps and a user's conversation see one model;
requests with neither are spread at random. Weights come from the config and may be overridden at run
time (an admin, or the canary controller: `flywheel.rollout`), from the store, without a restart.

Shadow variants answer in the background on `shadow_share` of the requests: recorded (ledger, capture),
never returned.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from interlock.settings import VariantSettings


def _unit(text: str) -> float:
    """A stable number in [0, 1) for `text`."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2**64


@dataclass
class VariantSet:
    """The variants of one alias, with the weights in force."""

    alias: str
    variants: list[VariantSettings]
    overrides: dict[str, float] = field(default_factory=dict)  # variant name -> weight, from the store

    def weights(self) -> dict[str, float]:
        """The weight of each serving variant (overrides win over the config)."""
        return {v.name: self.overrides.get(v.name, v.weight) for v in self.variants if not v.shadow}

    def set_overrides(self, overrides: Mapping[str, float]) -> None:
        """Replace the run-time weights (names that are not variants of this alias are ignored)."""
        known = {v.name for v in self.variants}
        self.overrides = {k: float(w) for k, w in overrides.items() if k in known and w >= 0}

    def choose(self, sticky: str | None) -> VariantSettings:
        """The serving variant for a request (`sticky`: the run or key it belongs to; None: at random)."""
        weights = self.weights()
        total = sum(weights.values())
        serving = [v for v in self.variants if not v.shadow]
        if total <= 0:  # every weight set to 0 at run time: the config's first serving variant answers
            return serving[0]
        point = (_unit(f"{self.alias}\x00{sticky}") if sticky else random.random()) * total
        for v in serving:
            point -= weights[v.name]
            if point < 0:
                return v
        return next(v for v in reversed(serving) if weights[v.name] > 0)

    def shadows(self, request_id: str) -> list[VariantSettings]:
        """The shadow variants that should also answer this request."""
        return [v for v in self.variants if v.shadow and _unit(f"{v.name}\x00{request_id}") < v.shadow_share]
