"""`interlock models`: the configured model aliases."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from interlock.cli.options import ConfigOption, settings_or_exit
from interlock.gateway.pricing import resolve_price


def models(
    config: ConfigOption = None,
) -> None:
    """List model aliases with provider, tags and price per 1M tokens."""
    settings = settings_or_exit(config)
    table = Table(title=f"Models ({settings.source})")
    for col in (
        "alias",
        "mode",
        "provider",
        "upstream model",
        "tags",
        "$ in / 1M",
        "$ out / 1M",
        "price source",
    ):
        table.add_column(col)
    for alias, m in settings.models.items():
        price = resolve_price(alias, m)
        table.add_row(
            alias,
            m.mode,
            m.provider,
            m.model or alias,
            ", ".join(m.tags),
            str(price.input_per_mtok),
            str(price.output_per_mtok),
            price.version,
        )
    Console().print(table)
