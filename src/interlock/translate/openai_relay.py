"""An OpenAI upstream's stream relayed to an OpenAI client, without a model object per chunk.

When a client asked `/v1/chat/completions` for a stream and the deployment speaks the same protocol
(`openai_compatible`), a chunk needs no translation: only its `model` changes (to the alias). Building a
`ChatChunk` for it and rendering it again cost about four times an orjson round trip (bench/RESULTS.md,
"Gateway vs a bare relay"), nine times a stream. Here each chunk is checked against `_ChunkDict`, a
TypedDict mirror of `ChatChunk` (the same fields, types and literals, so what the model path refuses
with a 502 this refuses too, in the model path's words), gets the alias as `model`, and is written back
with orjson as the upstream sent it otherwise: fields the upstream added pass through, fields it left
out stay out (the model path would fill them in with their defaults, mostly nulls).

`RelayChunk` carries what the gateway reads of a chunk: its text (for the budget backstop and for
counting tokens when the upstream reports no usage), tool-call arguments, the finish reason and the usage.
The gateway takes this path only when no hook has to see the chunks themselves (`Gateway` decides).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired

import orjson
import pydantic_core
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic refuses typing's own before Python 3.12

from interlock.translate.openai import parse_chunk, stream_error
from interlock.types import ChatChunk, Usage, reasoning_text

_KEEP = ConfigDict(extra="allow")  # as `_Relayed`: what an upstream adds reaches the client


class _ToolCallDeltaDict(TypedDict):  # ToolCallDelta: a plain BaseModel, extra fields dropped
    index: int
    id: NotRequired[str | None]
    type: NotRequired[Literal["function"] | None]
    function: NotRequired[dict[str, str] | None]


@with_config(_KEEP)
class _DeltaDict(TypedDict, total=False):
    role: Literal["assistant"] | None
    content: str | None
    tool_calls: list[_ToolCallDeltaDict] | None


@with_config(_KEEP)
class _ChoiceDict(TypedDict):
    index: NotRequired[int]
    delta: _DeltaDict
    finish_reason: NotRequired[str | None]
    logprobs: NotRequired[Any]


@with_config(_KEEP)
class _UsageDict(TypedDict, total=False):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@with_config(_KEEP)
class _ChunkDict(TypedDict):
    id: str
    object: NotRequired[Literal["chat.completion.chunk"]]
    created: int
    model: str
    choices: NotRequired[list[_ChoiceDict]]
    usage: NotRequired[_UsageDict | None]


_CHUNK: TypeAdapter[_ChunkDict] = TypeAdapter(_ChunkDict)


class RelayChunk:
    """One upstream chunk as it will be relayed (`data`, the alias already in it), and what the gateway reads."""

    __slots__ = ("arguments", "choices", "content", "data", "finish", "reasoning", "usage")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        choices = data.get("choices") or ()
        self.choices = len(choices)  # 0: a usage-only chunk
        self.content = ""  # answer text
        self.reasoning = ""  # `reasoning_content` or `reasoning` (types.REASONING_FIELDS)
        self.arguments: list[str] = []  # tool-call argument pieces
        self.finish: str | None = None
        for choice in choices:
            delta = choice["delta"]
            text = delta.get("content")
            if text:
                self.content += text
            self.reasoning += reasoning_text(delta)
            for call in delta.get("tool_calls") or ():
                self.arguments.append((call.get("function") or {}).get("arguments", ""))
            self.finish = choice.get("finish_reason") or self.finish
        usage = data.get("usage")
        self.usage = Usage.model_validate(usage) if usage is not None else None

    @classmethod
    def of(cls, chunk: ChatChunk) -> RelayChunk:
        """A chunk the gateway made itself (the usage chunk of its own count)."""
        return cls(chunk.model_dump(mode="json"))

    @property
    def text(self) -> str:
        """The generated text of this chunk, reasoning included (as `settlement.delta_text` of each delta)."""
        return self.content + self.reasoning

    def frame(self) -> bytes:
        """The chunk as one server-sent `data:` event."""
        try:
            body = orjson.dumps(self.data)
        except TypeError:  # an integer past 64 bits in a field the upstream added: orjson refuses those
            body = pydantic_core.to_json(self.data)
        return b"data: " + body + b"\n\n"


class RelayBatch(list[RelayChunk]):
    """Relayed chunks that arrived in one upstream read; `last` as on `types.Batch`."""

    last: bool = False

    @classmethod
    def final(cls, chunks: list[RelayChunk]) -> RelayBatch:
        """`chunks` as the stream's last batch."""
        batch = cls(chunks)
        batch.last = True
        return batch


def relay_chunk(data: bytes, alias: str) -> RelayChunk | None:
    """One SSE `data:` payload checked as a chat chunk, with `alias` as its model; None for `[DONE]`.

    Refuses what `translate.openai.parse_chunk` refuses, with the same errors.
    """
    if data.strip() == b"[DONE]":
        return None
    if b'"error"' in data:
        stream_error(data)
    try:
        chunk: dict[str, Any] = _CHUNK.validate_json(data)  # type: ignore[assignment]
    except ValidationError:
        # Rare: the model path says what is wrong, in its words (and should the mirror ever be stricter
        # than the model, the chunk it accepts goes out as the model path would render it).
        parsed = parse_chunk(data, alias)
        return None if parsed is None else RelayChunk.of(parsed)
    chunk["model"] = alias
    return RelayChunk(chunk)
