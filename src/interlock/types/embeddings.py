"""Embeddings: OpenAI's request and answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from interlock.types.base import (
    MAX_INPUTS,
    MAX_TOKEN_IDS,
    StrictInt,
    _Open,
)
from interlock.types.chat import Usage


class EmbeddingRequest(_Open):
    """An OpenAI embeddings request."""

    model: str = Field(min_length=1)
    input: (
        str
        | Annotated[list[str], Field(max_length=MAX_INPUTS, fail_fast=True)]
        | Annotated[list[int], Field(max_length=MAX_TOKEN_IDS, fail_fast=True)]
        | Annotated[
            list[Annotated[list[int], Field(max_length=MAX_TOKEN_IDS, fail_fast=True)]],
            Field(max_length=MAX_INPUTS, fail_fast=True),
        ]
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = Field(default=None, ge=1)
    user: str | None = None

    def texts(self) -> list[str]:
        """The inputs as strings; token-array inputs are rejected by the caller's provider."""
        if isinstance(self.input, str):
            return [self.input]
        if all(isinstance(x, str) for x in self.input):
            return [str(x) for x in self.input]
        raise ValueError("token-array input is not supported; send strings")

    @field_validator("input")
    @classmethod
    def _not_empty(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("input must not be empty")
        if isinstance(v, list) and len(v) > 2048:
            raise ValueError("at most 2048 inputs per request")
        return v


class Embedding(BaseModel):
    """One embedding vector."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    """An OpenAI embeddings response."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage
