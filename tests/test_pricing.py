"""Cost arithmetic: exact, rounded up to the micro-dollar, the same on the integer and Decimal paths."""

from __future__ import annotations

import random
from decimal import ROUND_CEILING, Decimal

from interlock.types import Price


def _reference(price: Price, prompt: int, completion: int) -> int:
    total = price.input_per_mtok * prompt + price.output_per_mtok * completion
    return int(total.to_integral_value(rounding=ROUND_CEILING))


def test_integer_path_matches_decimal_arithmetic() -> None:
    rng = random.Random(7)
    prices = [Decimal("2.5"), Decimal("10"), Decimal("0.075"), Decimal("0.000123456"), Decimal(0), Decimal("1234.5")]
    for _ in range(2000):
        price = Price(rng.choice(prices), rng.choice(prices), "t")
        p, c = rng.randrange(0, 200_000), rng.randrange(0, 50_000)
        assert price.cost_micros(p, c) == _reference(price, p, c)


def test_rounds_up_and_handles_prices_beyond_nine_decimals() -> None:
    assert Price(Decimal("0.1"), Decimal(0), "t").cost_micros(3, 0) == 1  # 0.3 micro-dollars -> 1
    fine = Price(Decimal("0.0000000001"), Decimal(0), "t")  # ten decimals: the Decimal path
    assert fine.cost_micros(10**10, 0) == 1 and fine.cost_micros(1, 0) == 1
    assert Price(Decimal(0), Decimal(0), "t").cost_micros(10**6, 10**6) == 0
