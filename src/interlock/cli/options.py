"""What every command shares: the `--config` option, loading settings, and failing with a message."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console

from interlock.errors import describe_validation_error
from interlock.settings import ConfigError, Settings, load_settings

M = TypeVar("M", bound=BaseModel)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (default: $INTERLOCK_CONFIG)")
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` in red on stderr; the exit to raise."""
    Console(stderr=True).print(f"[red]{message}[/red]", highlight=False)
    return typer.Exit(code)


def settings_or_exit(config: Path | None) -> Settings:
    """Load settings, or print the config error and exit 2."""
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def spec(model: type[M], **fields: object) -> M:
    """Options as a service's typed input, or exit 2 naming the first bad one."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise fail(describe_validation_error(exc).message, 2) from None
