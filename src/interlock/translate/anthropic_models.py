"""The Messages API request, as pydantic models: the shape is checked here, the meaning in `anthropic_checks`.

Content that may be a string or a list of blocks is always a list here (a string is one text block), so
that a bad block is reported at its own path (`messages.0.content.1.type`) and not as a failed union.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator
from pydantic.functional_validators import ModelWrapValidatorHandler

from interlock.types.base import MAX_MESSAGES, MAX_PARTS, MAX_TOOLS

BlockType = Literal["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "document"]


def _as_blocks(value: Any) -> Any:
    """A string is one text block; anything but a string, a list or null is refused."""
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    if value is None or isinstance(value, list):
        return value
    raise ValueError("must be a string or a list of content blocks")


class AnthropicBlock(BaseModel):
    """A content block; the fields used depend on `type` (checked by `anthropic_checks`)."""

    model_config = ConfigDict(extra="allow")  # cache_control, citations ...: hints the gateway may ignore

    type: BlockType
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: (
        Annotated[list[AnthropicBlock], Field(max_length=MAX_PARTS, fail_fast=True), BeforeValidator(_as_blocks)] | None
    ) = None
    is_error: bool | None = None
    source: dict[str, Any] | None = None


Blocks = Annotated[list[AnthropicBlock], Field(max_length=MAX_PARTS, fail_fast=True), BeforeValidator(_as_blocks)]


class AnthropicMessage(BaseModel):
    """One message of a Messages API request. A `system` message (text only) carries instructions at its
    place in the conversation (Claude Code sends them: the `mid-conversation-system` beta)."""

    role: Literal["user", "assistant", "system"]
    content: Blocks
    _plain: bool = PrivateAttr(default=False)  # the client sent a string, not blocks

    @model_validator(mode="wrap")
    @classmethod
    def _remember_plain(cls, data: Any, handler: ModelWrapValidatorHandler[AnthropicMessage]) -> AnthropicMessage:
        message = handler(data)
        message._plain = isinstance(data, dict) and isinstance(data.get("content"), str)
        return message

    @property
    def plain(self) -> bool:
        """Whether the content was sent as a plain string."""
        return self._plain


class AnthropicTool(BaseModel):
    """A tool definition (client tools only; `type` names a server tool, which is refused)."""

    model_config = ConfigDict(extra="allow")  # cache_control

    type: str | None = None
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class AnthropicToolChoice(BaseModel):
    """`tool_choice`."""

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class AnthropicOutputFormat(BaseModel):
    """`output_config.format`: structured outputs, an answer that is JSON matching `schema`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class AnthropicThinking(BaseModel):
    """`thinking`: whether a reasoning model's thinking comes back as `thinking` blocks.

    `enabled` (with `budget_tokens`, at least 1,024 and under `max_tokens`) and `adaptive` show it;
    `display: "omitted"` or `disabled` do not. The budget reaches the model as chat's `reasoning_effort`
    (`anthropic.effort_of`); `adaptive` leaves the effort to the model."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["enabled", "adaptive", "disabled"]
    budget_tokens: int | None = Field(default=None, strict=True)
    display: Literal["summarized", "omitted"] | None = None

    @property
    def shown(self) -> bool:
        """Whether the answer carries the model's thinking."""
        return self.type != "disabled" and self.display != "omitted"


class AnthropicOutputConfig(BaseModel):
    """`output_config`: the answer's format, and how much effort the model spends on it."""

    model_config = ConfigDict(extra="forbid")

    format: AnthropicOutputFormat | None = None
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None  # see `anthropic.effort_of`
    task_budget: Any = None  # refused; declared so that the refusal can say so


class AnthropicContextEdit(BaseModel):
    """One of `context_management.edits`: only `clear_thinking_*` is accepted (`anthropic_checks`)."""

    model_config = ConfigDict(extra="allow")  # keep, trigger, ...: the edit's own settings

    type: str = Field(min_length=1, max_length=64)


class AnthropicContextManagement(BaseModel):
    """`context_management`: edits the API would make to the context before the model sees it."""

    model_config = ConfigDict(extra="forbid")

    edits: list[AnthropicContextEdit] = Field(default_factory=list, max_length=16)


class AnthropicPrompt(BaseModel):
    """What `/v1/messages/count_tokens` takes: the prompt of a Messages API request."""

    model_config = ConfigDict(extra="forbid")  # as Anthropic's own API: an unknown field is a 400

    model: str = Field(min_length=1)
    messages: list[AnthropicMessage] = Field(min_length=1, max_length=MAX_MESSAGES, fail_fast=True)
    system: Blocks | None = None
    tools: list[AnthropicTool] | None = Field(default=None, max_length=MAX_TOOLS, fail_fast=True)
    tool_choice: AnthropicToolChoice | None = None
    thinking: AnthropicThinking | None = None
    output_config: AnthropicOutputConfig | None = None
    context_management: AnthropicContextManagement | None = None
    # Anthropic features the gateway cannot honour; declared so that the refusal can say so.
    mcp_servers: Any = None
    container: Any = None


class AnthropicRequest(AnthropicPrompt):
    """A Messages API request."""

    max_tokens: int = Field(ge=1, strict=True)
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1, strict=True)  # sent on as chat's (vLLM's) `top_k`
    stop_sequences: list[str] | None = Field(default=None, max_length=64, fail_fast=True)
    stream: bool = Field(default=False, strict=True)
    metadata: dict[str, Any] | None = None
    service_tier: Literal["auto", "standard_only"] | None = None  # accepted, ignored: the gateway has one tier
