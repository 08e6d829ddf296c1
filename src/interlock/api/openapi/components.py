"""The schemas: every body a handler validates and every record it renders, plus the hand-written ones."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from interlock.admin import (
    BudgetSet,
    GuardrailPolicy,
    GuardrailSet,
    KeyCreate,
    KeySuspend,
    OrgCreate,
    OutcomeReport,
    RateLimitSet,
    RoiRow,
    TeamCreate,
)
from interlock.admin.agents import AgentCreate, HaltSet, OwnerCreate
from interlock.admin.approvals import ApprovalDecision
from interlock.admin.flywheel import FeedbackReport
from interlock.admin.mcp import McpApprove
from interlock.admin.tokens import TokenMint
from interlock.admin.variants import WeightsSet
from interlock.agents.runs import RunCaps
from interlock.api.completions import CompletionRequest
from interlock.api.openapi.ops import (
    _INT,
    _NULLABLE_STR,
    _NUM,
    _OBJ,
    _STR,
    Schema,
    _obj,
    _ref,
)
from interlock.store.agent_queries import HaltRecord, OwnerRecord
from interlock.store.approval_queries import ApprovalRecord, TokenRecord
from interlock.store.records import BudgetRecord, KeyRecord, OrgRecord, RateLimitRecord, SpendRow, TeamRecord
from interlock.store.variant_queries import RolloutRecord
from interlock.translate.anthropic import AnthropicPrompt, AnthropicRequest
from interlock.translate.responses import ResponsesRequest
from interlock.types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse

_BODIES: tuple[type[BaseModel], ...] = (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    ResponsesRequest,
    AnthropicRequest,
    AnthropicPrompt,
    KeyCreate,
    KeySuspend,
    OrgCreate,
    TeamCreate,
    BudgetSet,
    RateLimitSet,
    GuardrailSet,
    OutcomeReport,
    FeedbackReport,
    OwnerCreate,
    AgentCreate,
    RunCaps,
    HaltSet,
    ApprovalDecision,
    TokenMint,
    McpApprove,
    WeightsSet,
)
_RENDERED: tuple[type[Any], ...] = (
    ChatResponse,
    ChatChunk,
    EmbeddingResponse,
    KeyRecord,
    SpendRow,
    OrgRecord,
    TeamRecord,
    BudgetRecord,
    RateLimitRecord,
    GuardrailPolicy,
    RoiRow,
    OwnerRecord,
    HaltRecord,
    ApprovalRecord,
    TokenRecord,
    RolloutRecord,
)


def _hand_written(model: dict[type[Any], Schema]) -> dict[str, Schema]:
    """Response shapes rendered from dicts, and the two error flavours."""
    key = dict(model[KeyRecord])
    key["properties"] = {k: v for k, v in key["properties"].items() if k != "hash"}
    key["properties"]["status"] = {"enum": ["active", "revoked", "expired", "suspended"]}
    key["required"] = [r for r in key.get("required", []) if r != "hash"] + ["status"]
    budget = dict(model[BudgetRecord])
    budget["properties"] = {
        **budget["properties"],
        "spent_micros": _INT,
        "reserved_micros": _INT,
        "remaining_micros": _INT,
    }
    usage = {"type": ["object", "null"]}
    return {
        "Error": _obj({"error": _obj({"message": _STR, "type": _STR}, param=_NULLABLE_STR, code=_NULLABLE_STR)}),
        "AnthropicError": _obj({"type": {"const": "error"}, "error": _obj({"type": _STR, "message": _STR})}),
        "Key": key,
        "CreatedKey": {"allOf": [_ref("Key"), _obj({"key": _STR})]},
        "BudgetStatus": budget,
        "Model": _obj(
            {"id": _STR, "object": {"const": "model"}, "created": _INT, "owned_by": _STR},
            type={"const": "model"},  # Anthropic's fields, for `anthropic` clients on the same path
            display_name=_STR,
            created_at={"type": "string", "format": "date-time"},
            mode=_STR,
            context_window={"type": ["integer", "null"]},
        ),
        "Completion": _obj(
            {"id": _STR, "object": {"const": "text_completion"}, "created": _INT, "model": _STR},
            choices={"type": "array", "items": _obj({"text": _STR, "index": _INT})},
            usage=usage,
        ),
        "Response": _obj({"id": _STR, "object": {"const": "response"}, "status": _STR, "output": {"type": "array"}}),
        "AnthropicMessage": _obj(
            {"id": _STR, "type": {"const": "message"}, "role": {"const": "assistant"}, "content": {"type": "array"}},
            model=_STR,
            stop_reason=_NULLABLE_STR,
            stop_sequence=_NULLABLE_STR,
            usage=_obj({"input_tokens": _INT, "output_tokens": _INT}),
        ),
        "TokenCount": _obj({"input_tokens": _INT}),
        "Agent": _obj(
            {"id": _STR, "name": _STR, "owner_id": _STR, "description": _STR, "status": _STR, "policy": _OBJ},
            caps=_OBJ,
            models={"type": "array", "items": _STR},
            created_at=_NUM,
            expires_at={"type": ["number", "null"]},
            keys={"type": "array", "items": _ref("Key")},
            halt={"anyOf": [_ref("HaltRecord"), {"type": "null"}]},
        ),
        "CreatedAgent": {"allOf": [_ref("Agent"), _obj({"key": _STR, "key_id": _STR})]},
        "Spend": _obj(
            {
                "object": {"const": "list"},
                "group": _STR,
                "data": {"type": "array", "items": model[SpendRow]},
                "summary": _obj({"spent_micros": _INT, "reference_cost_micros": _INT}),
            }
        ),
    }


def _components() -> dict[str, Schema]:
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        *((m.__name__, "validation", TypeAdapter(m)) for m in _BODIES),
        *((m.__name__, "serialization", TypeAdapter(m)) for m in _RENDERED),
    ]
    refs, defs = TypeAdapter.json_schemas(inputs, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Schema] = dict(defs.get("$defs", {}))
    rendered = {m: schemas[refs[(m.__name__, "serialization")]["$ref"].rsplit("/", 1)[1]] for m in _RENDERED}
    for key, mode, _ in inputs:
        schemas.setdefault(key, refs[(key, mode)])  # one name per model, whatever pydantic suffixed
    return {**schemas, **_hand_written(rendered)}
