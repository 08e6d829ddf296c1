"""Chat: OpenAI's request, answer and stream chunk, the lingua franca of the gateway."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from interlock.types.base import (
    MAX_MESSAGES,
    MAX_PARTS,
    MAX_TOOLS,
    FinishReason,
    Role,
    StrictBool,
    StrictFloat,
    StrictInt,
    _Open,
    _Relayed,
    check_depth,
)


class TextPart(BaseModel):
    """A text part of a multi-part message."""

    type: Literal["text"]
    text: str


class ImagePart(_Open):
    """An image part; passed to upstreams that accept images."""

    type: Literal["image_url"]
    image_url: dict[str, Any]

    @field_validator("image_url")
    @classmethod
    def _bound(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_depth(v, "image_url")


ContentPart = TextPart | ImagePart


class FunctionCall(BaseModel):
    """The function a tool call invokes; `arguments` is a JSON string, as in OpenAI's format."""

    name: str
    arguments: str = ""


class ToolCall(BaseModel):
    """One tool call made by the assistant."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Open):
    """One chat message."""

    role: Role
    content: str | Annotated[list[ContentPart], Field(max_length=MAX_PARTS, fail_fast=True)] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = Field(default=None, max_length=MAX_TOOLS, fail_fast=True)
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _check_role_fields(self) -> Message:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a message with role 'tool' needs 'tool_call_id'")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a message with role '{self.role}' needs 'content'")
        return self

    def text(self) -> str:
        """The message's text, with the text parts of a multi-part message joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


class FunctionDef(BaseModel):
    """A function the model may call."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _bound(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_depth(v, "parameters")


class Tool(BaseModel):
    """A tool offered to the model."""

    type: Literal["function"] = "function"
    function: FunctionDef


class NamedToolChoice(BaseModel):
    """`tool_choice` that forces one function."""

    type: Literal["function"] = "function"
    function: dict[str, str]

    @field_validator("function")
    @classmethod
    def _has_name(cls, v: dict[str, str]) -> dict[str, str]:
        if not v.get("name"):
            raise ValueError("tool_choice.function needs a 'name'")
        return v


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaSpec(BaseModel):
    """The schema of a `json_schema` response format."""

    name: str = "response"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    description: str | None = None
    strict: bool | None = None

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _bound(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_depth(v, "schema")


class ResponseFormat(BaseModel):
    """`response_format`: plain text, any JSON object, or JSON matching a schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_present(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type 'json_schema' needs a 'json_schema' object")
        return self


class StreamOptions(BaseModel):
    """`stream_options`."""

    include_usage: StrictBool = False


class ChatRequest(_Open):
    """An OpenAI chat completion request, validated."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES, fail_fast=True)
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    top_p: StrictFloat | None = Field(default=None, ge=0, le=1)  # 0 is allowed, as OpenAI allows it
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    stop: str | Annotated[list[str], Field(max_length=64, fail_fast=True)] | None = None  # at most 4: `_check_stop`
    seed: StrictInt | None = None
    n: StrictInt = Field(default=1, ge=1, le=1)
    tools: list[Tool] | None = Field(default=None, max_length=MAX_TOOLS, fail_fast=True)
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    presence_penalty: StrictFloat | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: StrictFloat | None = Field(default=None, ge=-2, le=2)
    user: str | None = None
    metadata: dict[str, str] | None = None

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return v

    @model_validator(mode="after")
    def _check_tool_choice(self) -> ChatRequest:
        if self.tool_choice == "required" and not self.tools:
            raise ValueError("tool_choice 'required' needs at least one tool in 'tools'")
        if isinstance(self.tool_choice, NamedToolChoice):
            names = {t.function.name for t in self.tools or []}
            if self.tool_choice.function["name"] not in names:
                raise ValueError(
                    f"tool_choice names function '{self.tool_choice.function['name']}', which is not in 'tools'"
                )
        return self

    def output_limit(self) -> int | None:
        """The completion token limit the client asked for, from either spelling."""
        return self.max_completion_tokens or self.max_tokens

    def stop_list(self) -> list[str]:
        """`stop` as a list."""
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def wants_usage_in_stream(self) -> bool:
        """Whether a streamed answer ends with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)


class Usage(_Relayed):
    """Token counts of one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, prompt: int, completion: int) -> Usage:
        """Usage with the total filled in."""
        return cls(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


# Where an upstream puts a reasoning model's thinking beside the answer: `reasoning_content` (DeepSeek, vLLM's
# reasoning parsers), `reasoning` (vLLM's newer name, OpenRouter). Some send both, with the same text.
REASONING_FIELDS = ("reasoning_content", "reasoning")


def reasoning_text(extra: dict[str, Any] | None) -> str:
    """The reasoning an answer or a delta carries (the `model_extra` of a message or delta): the first of
    `REASONING_FIELDS` that holds a string, else ""."""
    if extra:
        for name in REASONING_FIELDS:
            text = extra.get(name)
            if isinstance(text, str):
                return text
    return ""


class AssistantMessage(_Relayed):
    """The message in a completion choice."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


class Choice(_Relayed):
    """One choice of a chat completion."""

    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason | str | None = "stop"  # an upstream's own reasons pass through
    logprobs: Any = None


class ChatResponse(_Relayed):
    """An OpenAI chat completion."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ToolCallDelta(BaseModel):
    """A piece of a streamed tool call."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: dict[str, str] | None = None


class Delta(_Relayed):
    """The increment carried by a streamed chunk."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(_Relayed):
    """One choice of a streamed chunk."""

    index: int = 0
    delta: Delta
    finish_reason: FinishReason | str | None = None  # an upstream's own reasons pass through
    logprobs: Any = None


class ChatChunk(_Relayed):
    """An OpenAI chat completion chunk. A usage-only chunk has no choices."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None


class Batch(list[ChatChunk]):
    """Stream chunks that are ready together (they arrived in one upstream read).

    `last` is set when the provider knows that nothing follows (the upstream's end marker came in the
    same read), so the client's closing frames can leave in the same write.
    """

    last: bool = False

    @classmethod
    def final(cls, chunks: list[ChatChunk]) -> Batch:
        """`chunks` as the stream's last batch."""
        batch = cls(chunks)
        batch.last = True
        return batch
