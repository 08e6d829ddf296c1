"""Prices per model (config or the genai-prices catalog) and savings against a reference model.

Prices come from the model's config when given, otherwise from the `genai-prices` catalog. Every
ledger row keeps the version of the price it was charged at. Costs are rounded *up* to the next
micro-dollar, so the ledger never under-reports: the error is below one micro-dollar per request.
"""

from __future__ import annotations

import hashlib
import logging
from decimal import Decimal
from typing import Any

from interlock.settings import ModelSettings, Settings
from interlock.store.records import SpendRow
from interlock.types import Price

log = logging.getLogger(__name__)


def _catalog_price(upstream_model: str, base_url: str | None) -> Price | None:
    try:
        import genai_prices
        from genai_prices import Usage, calc_price
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    try:
        inp = calc_price(Usage(input_tokens=1_000_000, output_tokens=0), upstream_model, provider_api_url=base_url)
        out = calc_price(Usage(input_tokens=0, output_tokens=1_000_000), upstream_model, provider_api_url=base_url)
    except LookupError:
        if not base_url:
            return None
        return _catalog_price(upstream_model, None)
    version = f"genai-prices {genai_prices.__version__}: {inp.provider.id}/{inp.model.id}"
    return Price(Decimal(inp.total_price), Decimal(out.total_price), version)


def resolve_price(alias: str, model: ModelSettings) -> Price:
    """The price of `alias`: from its config, else the catalog, else zero (with a warning)."""
    upstream = model.model or alias
    if model.price_input_per_mtok is not None or model.price_output_per_mtok is not None:
        pin = model.price_input_per_mtok or Decimal(0)
        pout = model.price_output_per_mtok or Decimal(0)
        digest = hashlib.sha256(f"{pin}/{pout}".encode()).hexdigest()[:8]
        return Price(pin, pout, f"config:{digest}")
    found = _catalog_price(upstream, model.base_url)
    if found is not None:
        return found
    log.warning("no price for model %r (alias %r): configure price_*_per_mtok; charging 0", upstream, alias)
    return Price(Decimal(0), Decimal(0), "unpriced")


def reference_price(settings: Settings) -> Price | None:
    """The price of the reference (proprietary) model that savings are measured against, if known."""
    name = settings.governance.reference_model
    if not name:
        return None
    price = _catalog_price(name, None)
    if price is None:
        log.warning("reference model %r is not in the genai-prices catalog; no savings report", name)
    return price


def savings_summary(rows: list[SpendRow], reference: str) -> dict[str, Any]:
    """Totals, and what the same tokens would have cost on the reference model."""
    spent = sum(r.cost_micros for r in rows)
    ref = sum(r.reference_cost_micros for r in rows)
    saved = (ref - spent) / ref * 100 if ref else None
    text = f"spent ${spent / 1e6:,.6f}"
    if reference and ref:
        text += f"; the same traffic on {reference} would have cost ${ref / 1e6:,.6f} (saved {saved:.1f}%)"
    return {
        "spent_micros": spent,
        "reference_model": reference or None,
        "reference_cost_micros": ref,
        "saved_percent": None if saved is None else round(saved, 2),
        "text": text,
    }
