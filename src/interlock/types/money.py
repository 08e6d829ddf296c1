"""Prices and costs in integer micro-dollars."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

# Money ---------------------------------------------------------------------------------------
# Prices in USD per million tokens; costs in integer micro-dollars, rounded up, so the ledger never
# under-reports (the error is below one micro-dollar per request).

SCALE = 10**9  # prices with up to 9 decimals (in $ per 1M tokens) are exact integers at this scale


def _scaled(price: Decimal) -> int | None:
    scaled = price * SCALE
    return int(scaled) if scaled == scaled.to_integral_value() else None


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million input and output tokens, and where that number came from."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    version: str
    # The same prices as exact integers, for integer arithmetic on the hot path (None: too many decimals).
    _in: int | None = field(default=None, init=False, repr=False, compare=False)
    _out: int | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_in", _scaled(self.input_per_mtok))
        object.__setattr__(self, "_out", _scaled(self.output_per_mtok))

    def cost_micros(self, prompt_tokens: int, completion_tokens: int) -> int:
        """The cost of these tokens in micro-dollars, rounded up."""
        # $p per 1M tokens is p micro-dollars per token.
        if self._in is not None and self._out is not None:
            return -(-(self._in * prompt_tokens + self._out * completion_tokens) // SCALE)
        total = self.input_per_mtok * prompt_tokens + self.output_per_mtok * completion_tokens
        return int(total.to_integral_value(rounding=ROUND_CEILING))
