"""A deterministic provider for tests and demos: it echoes the last user message.

It reports usage as word counts, answers tool requests with a call to the first tool, and answers
JSON requests with a JSON object. A request with tools whose newest message holding `[[call:NAME {json}]]`
markers (any role: a tool result with one plays a hijacked model) is answered with exactly those calls.
A request with a `reasoning_effort` plays a reasoning model: the answer carries `reasoning_content`
("thinking (EFFORT) about: PROMPT"), streamed before the text as vLLM's reasoning parsers send it.
Two markers in the last user message inject failures:
`[[fail]]` fails before the first byte, `[[fail-mid]]` fails after two chunks.

It is no production entry point: importing this module registers it as the `fake` provider, so a
config that wants it says `[plugins] modules = ["interlock.testing.fake"]`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator

import orjson

from interlock.errors import UpstreamError
from interlock.plugins import PROVIDERS, Plugin, PluginOptions, ProviderFactory
from interlock.providers.base import Provider, ProviderContext
from interlock.settings import ModelSettings
from interlock.types import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    FunctionCall,
    ToolCall,
    ToolCallDelta,
    Usage,
)


def _last_user_text(request: ChatRequest) -> str:
    for m in reversed(request.messages):
        if m.role == "user":
            return m.text()
    return ""


_CALL = re.compile(r"\[\[call:([\w.-]+) (\{.*?\})\]\]", re.DOTALL)


def _scripted_calls(request: ChatRequest) -> list[ToolCall]:
    """The calls the newest message with `[[call:NAME {json}]]` markers asks for."""
    for m in reversed(request.messages):
        found = _CALL.findall(m.text())
        if found:
            return [
                ToolCall(id="call_" + uuid.uuid4().hex[:12], function=FunctionCall(name=name, arguments=args))
                for name, args in found
            ]
    return []


def _words(text: str) -> int:
    return len(text.split())


class FakeProvider(Provider):
    """Echoes the prompt; deterministic, instant, no model. `received` keeps the last requests it was sent."""

    kind = "fake"
    received: deque[ChatRequest | EmbeddingRequest]
    broken = False  # the `fail` option: every call fails

    def _seen(self, request: ChatRequest | EmbeddingRequest) -> None:
        if not hasattr(self, "received"):
            self.received = deque(maxlen=64)
        self.received.append(request)

    def _answer(self, request: ChatRequest) -> tuple[str | None, list[ToolCall] | None, FinishReason]:
        self._seen(request)
        prompt = _last_user_text(request)
        if "[[fail]]" in prompt or self.broken:
            raise UpstreamError("fake upstream failure")
        if request.tools and request.tool_choice != "none":
            scripted = _scripted_calls(request)
            if scripted:
                return None, scripted, "tool_calls"
            name = request.tools[0].function.name
            call = ToolCall(
                id="call_" + uuid.uuid4().hex[:12],
                function=FunctionCall(name=name, arguments='{"echo": true}'),
            )
            return None, [call], "tool_calls"
        if request.response_format is not None and request.response_format.type != "text":
            return orjson.dumps({"echo": prompt}).decode(), None, "stop"
        text = "echo: " + prompt
        limit = request.output_limit()
        if limit is not None and _words(text) > limit:
            return " ".join(text.split()[:limit]), None, "length"
        return text, None, "stop"

    @staticmethod
    def _thought(request: ChatRequest) -> str | None:
        effort = (request.model_extra or {}).get("reasoning_effort")
        return f"thinking ({effort}) about: {_last_user_text(request)}" if effort not in (None, "none") else None

    def _usage(self, request: ChatRequest, text: str | None) -> Usage:
        prompt = sum(_words(m.text()) for m in request.messages)
        return Usage.of(prompt, _words(text or "") or 1)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """An echo of the last user message."""
        text, calls, finish = self._answer(request)
        thought = self._thought(request)
        message = AssistantMessage(content=text, tool_calls=calls)
        if thought:
            message = AssistantMessage.model_validate({**message.model_dump(), "reasoning_content": thought})
        return ChatResponse(
            id="chatcmpl-" + uuid.uuid4().hex[:24],
            created=int(time.time()),
            model=self.alias,
            choices=[Choice(message=message, finish_reason=finish)],
            usage=self._usage(request, text),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """The echo, one word per chunk, then a usage chunk."""
        text, calls, finish = self._answer(request)
        cid, created = "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time())

        def chunk(delta: Delta, finish_reason: FinishReason | None = None) -> ChatChunk:
            return ChatChunk(
                id=cid,
                created=created,
                model=self.alias,
                choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)],
            )

        yield chunk(Delta(role="assistant", content=""))
        thought = self._thought(request)
        for i, word in enumerate(thought.split(" ") if thought else []):
            yield chunk(Delta.model_validate({"reasoning_content": word if i == 0 else " " + word}))
        fail_mid = "[[fail-mid]]" in _last_user_text(request)
        for i, word in enumerate((text or "").split(" ") if text else []):
            if fail_mid and i == 2:
                raise UpstreamError("fake upstream failure mid-stream")
            yield chunk(Delta(content=word if i == 0 else " " + word))
        for i, call in enumerate(calls or []):
            yield chunk(
                Delta(
                    tool_calls=[
                        ToolCallDelta(
                            index=i,
                            id=call.id,
                            type="function",
                            function={"name": call.function.name, "arguments": call.function.arguments},
                        )
                    ]
                )
            )
        yield chunk(Delta(), finish)
        yield ChatChunk(id=cid, created=created, model=self.alias, usage=self._usage(request, text))

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """A deterministic 8-dimensional vector per input."""
        self._seen(request)
        texts = request.texts()
        data = [
            Embedding(index=i, embedding=[((len(t) * (k + 1)) % 97) / 97 for k in range(8)])
            for i, t in enumerate(texts)
        ]
        tokens = sum(_words(t) for t in texts)
        return EmbeddingResponse(data=data, model=self.alias, usage=Usage.of(tokens, 0))

    def count_tokens(self, text: str) -> int | None:
        """Words, as this provider's usage reports them."""
        return _words(text)


class Options(PluginOptions):
    """`fail = true`: every call fails before the first byte (a broken deployment)."""

    fail: bool = False


def create(alias: str, model: ModelSettings, context: ProviderContext, options: Options | None = None) -> Provider:
    """The `fake` provider for one deployment."""
    provider = FakeProvider(alias, model)
    provider.broken = (options or model.plugin_options(Options)).fail
    return provider


PLUGIN: Plugin[ProviderFactory] = PROVIDERS.register(Plugin("fake", Options, create))
"""Registered in-process on import (see the module docstring)."""
