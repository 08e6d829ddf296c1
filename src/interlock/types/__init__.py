"""Typed requests and responses that every stage of the pipeline hands to the next.

The chat types follow OpenAI's wire format, which is the lingua franca of the gateway: the Anthropic
API and the Anthropic provider translate to and from it in pure functions.
"""

from interlock.types.base import FinishReason, Role
from interlock.types.chat import (
    AssistantMessage,
    Batch,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    ContentPart,
    Delta,
    FunctionCall,
    FunctionDef,
    ImagePart,
    JsonSchemaSpec,
    Message,
    NamedToolChoice,
    ResponseFormat,
    StreamOptions,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
    reasoning_text,
)
from interlock.types.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse
from interlock.types.money import SCALE, Price

__all__ = [
    "SCALE",
    "AssistantMessage",
    "Batch",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "ChunkChoice",
    "ContentPart",
    "Delta",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "FinishReason",
    "FunctionCall",
    "FunctionDef",
    "ImagePart",
    "JsonSchemaSpec",
    "Message",
    "NamedToolChoice",
    "Price",
    "ResponseFormat",
    "Role",
    "StreamOptions",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "Usage",
    "reasoning_text",
]
