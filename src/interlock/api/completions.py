"""OpenAI's legacy completions (`POST /v1/completions`), translated onto the chat pipeline.

A prompt becomes a chat request with one user message, so keys, budgets, routing, failover, the
ledger and the audit treat it exactly as a chat request. On a chat model, local or remote, the prompt
is therefore rendered with the model's chat template: raw-prompt continuation (what a base model
does with `/v1/completions`) is not offered, because every deployment behind an alias would have to
support it, and an OpenAI-compatible upstream is called on `/v1/chat/completions`. The README says so.

Supported: `prompt` (a string, or a list of one string), `max_tokens` (default 16, as OpenAI's),
`temperature`, `top_p`, `stop`, `seed`, `presence_penalty`, `frequency_penalty`, `user`, `stream` with
`stream_options.include_usage`. `echo` only false, `n` and `best_of` only 1; `suffix`, `logprobs`
and `logit_bias` are refused with a 400, as is any field not listed here, so nothing is ignored silently.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from interlock.api.http import validate
from interlock.api.openai import ChatWire, model_endpoint
from interlock.errors import BadRequest
from interlock.plugins.hooks import ModelRequest, ModelResponse
from interlock.types import ChatChunk, ChatRequest, ChatResponse, StreamOptions, Usage
from interlock.types.base import MAX_INPUTS, StrictBool, StrictFloat, StrictInt

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint
_REFUSED = ("suffix", "logprobs", "logit_bias")


class CompletionRequest(BaseModel):
    """An OpenAI completions request; fields this gateway cannot honour are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    prompt: str | Annotated[list[str], Field(max_length=MAX_INPUTS, fail_fast=True)]
    max_tokens: StrictInt | None = Field(default=DEFAULT_MAX_TOKENS, ge=1)
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    top_p: StrictFloat | None = Field(default=None, ge=0, le=1)
    stop: str | Annotated[list[str], Field(max_length=64, fail_fast=True)] | None = None
    seed: StrictInt | None = None
    presence_penalty: StrictFloat | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: StrictFloat | None = Field(default=None, ge=-2, le=2)
    user: str | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    echo: StrictBool = False
    n: StrictInt = Field(default=1, ge=1, le=1)
    best_of: StrictInt | None = Field(default=None, ge=1, le=1)

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("only one prompt per request is supported: send a string or a list of one string")
        return v

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, v: bool) -> bool:
        if v:
            raise ValueError("echo is not supported; send echo: false or leave it out")
        return v

    def text(self) -> str:
        """The prompt as one string."""
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def chat_fields(self) -> dict[str, Any]:
        """The same request as the fields of a chat request with one user message."""
        fields = self.model_dump(exclude_none=True, exclude={"prompt", "echo", "n", "best_of"})
        return {**fields, "messages": [{"role": "user", "content": self.text()}]}


def _completion_id(chat_id: str) -> str:
    return "cmpl-" + chat_id.removeprefix("chatcmpl-")


def _usage(usage: Usage | None) -> dict[str, Any] | None:
    return None if usage is None else usage.model_dump(exclude_none=True)


class CompletionsWire(ChatWire):
    """OpenAI's completions: `text_completion` JSON, or `data:` events ending in `[DONE]`."""

    flavor: ClassVar[str] = "openai"

    def parse(self, data: dict[str, Any]) -> ModelRequest:
        """A ChatRequest built from the completions request."""
        for name in _REFUSED:
            if data.get(name) is not None:
                raise BadRequest(
                    f"'{name}' is not supported on /v1/completions; leave it out",
                    code="unsupported_parameter",
                    param=name,
                )
        fields = {k: v for k, v in data.items() if k not in _REFUSED}  # what is left of them is null
        request = validate(ChatRequest, validate(CompletionRequest, fields).chat_fields())  # e.g. 5 stops
        self._usage = request.wants_usage_in_stream()
        return request

    def render(self, response: ModelResponse) -> bytes:
        """The answer as a `text_completion`."""
        assert isinstance(response, ChatResponse)
        choices = [
            {"text": c.message.content or "", "index": c.index, "logprobs": None, "finish_reason": c.finish_reason}
            for c in response.choices
        ]
        body = {
            "id": _completion_id(response.id),
            "object": "text_completion",
            "created": response.created,
            "model": response.model,
            "choices": choices,
            "usage": _usage(response.usage),
        }
        return orjson.dumps(body)

    def frames(self, chunk: ChatChunk) -> list[bytes]:
        """One `data:` event per chunk that carries text, an end, or (when asked for) usage."""
        choices = [
            {"text": c.delta.content or "", "index": c.index, "logprobs": None, "finish_reason": c.finish_reason}
            for c in chunk.choices
            if c.delta.content or c.finish_reason
        ]
        usage = chunk.usage if self._usage else None
        if not choices and usage is None:
            return []
        body: dict[str, Any] = {
            "id": _completion_id(chunk.id),
            "object": "text_completion",
            "created": chunk.created,
            "model": chunk.model,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = _usage(usage)
        return [b"data: " + orjson.dumps(body) + b"\n\n"]


completions = model_endpoint("completions", CompletionsWire)
