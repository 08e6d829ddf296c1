"""Anthropic's Messages API (`POST /v1/messages`), translated onto the same gateway."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from interlock.api.exchange import error_body
from interlock.api.http import sse_frame, validate
from interlock.api.openai import model_endpoint
from interlock.errors import GatewayError
from interlock.gateway.context import RequestContext
from interlock.gateway.settlement import TokenCounter
from interlock.plugins.hooks import ModelRequest, ModelResponse
from interlock.translate.anthropic import AnthropicRequest, anthropic_to_chat_request, prompt_text
from interlock.translate.anthropic_output import AnthropicStreamWriter, chat_response_to_anthropic
from interlock.types import ChatChunk, ChatRequest, ChatResponse

# The wire has no gateway: message_start counts the templated prompt where the provider can, else estimates.
_COUNTER = TokenCounter()


def _event(name: str, data: dict[str, object]) -> bytes:
    return sse_frame(orjson.dumps(data), event=name)


class MessagesWire:
    """Anthropic's messages: JSON, or named events from `message_start` to `message_stop`."""

    flavor: ClassVar[str] = "anthropic"

    def __init__(self, ctx: RequestContext) -> None:
        self._ctx = ctx
        self._model = ""
        self._chat: ChatRequest | None = None
        self._writer: AnthropicStreamWriter | None = None
        self._opened = False
        self._thinking = False  # whether the client asked to see the model's reasoning

    def parse(self, data: dict[str, Any]) -> ModelRequest:
        """A ChatRequest translated from Anthropic's request, or a 400 naming the field."""
        request = validate(AnthropicRequest, data)
        self._model = request.model
        self._chat = anthropic_to_chat_request(request)
        self._thinking = request.thinking is not None and request.thinking.shown
        return self._chat

    def _stops(self) -> list[str]:
        return self._chat.stop_list() if self._chat is not None else []

    def render(self, response: ModelResponse) -> bytes:
        """The answer as Anthropic's JSON."""
        assert isinstance(response, ChatResponse)
        return orjson.dumps(chat_response_to_anthropic(response, self._model, self._stops(), self._thinking))

    def _prompt_tokens(self) -> int:
        dep, chat = self._ctx.deployment, self._chat
        if dep is None or chat is None:
            return 0
        try:
            templated = dep.provider.count_prompt(chat)
        except GatewayError:
            templated = None
        return (
            templated if templated is not None else _COUNTER.estimate(dep, prompt_text(chat.messages, chat.tools or []))
        )

    def frames(self, chunk: ChatChunk) -> list[bytes]:
        """The events for one chunk (`message_start`, with the prompt's token count, before the first)."""
        if self._writer is None:
            message_id = "msg_" + self._ctx.request_id.removeprefix("req_")
            self._writer = AnthropicStreamWriter(self._model, message_id, self._stops(), self._thinking)
        writer = self._writer
        events = [] if self._opened else writer.start(self._prompt_tokens())
        self._opened = True
        events += writer.feed(chunk)
        return [_event(name, data) for name, data in events]

    def closing(self) -> list[bytes]:
        """Closing the open block, `message_delta` and `message_stop`."""
        if self._writer is None:
            return []
        return [_event(name, data) for name, data in self._writer.finish()]

    def error_event(self, exc: GatewayError) -> bytes:
        """An `error` event."""
        return sse_frame(error_body(exc, "anthropic"), event="error")


messages = model_endpoint("messages", MessagesWire)
