"""The ground of the settings: the strict base model, config errors and how validation errors read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

DEFAULT_CHAT_ALIAS = "smollm2"


DEFAULT_EMBEDDING_ALIAS = "minilm"


OptionsT = TypeVar("OptionsT", bound=BaseModel)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the source, the key and the problem."""

    @classmethod
    def of(cls, source: str, problems: Sequence[str]) -> ConfigError:
        """`invalid config in SOURCE:`, then one indented `key.path: problem` line per problem."""
        return cls("\n".join([f"invalid config in {source}:", *(f"  {p}" for p in problems)]))


def describe_errors(exc: ValidationError, at: Sequence[str | int] = ()) -> list[str]:
    """One `key.path: problem` per error in `exc`, its keys under `at` (the table that was validated)."""
    lines = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in (*at, *err["loc"])) or "(top level)"
        problem = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{key}: {problem}")
    return lines


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
