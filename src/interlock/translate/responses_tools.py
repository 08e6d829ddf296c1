"""The Responses API's tools <-> chat tools: function tools, and namespaces of them.

A `namespace` tool groups functions under one name (Codex sends its sub-agent tools so). Chat has no
namespaces, so each function of one becomes a chat tool named `<namespace>__<name>` (the separator the
MCP gateway uses for `<server>__<tool>`), and `ToolNames` turns a chat call's name back into the
`name` and `namespace` of the Responses `function_call` item, and an item sent back into the chat name.
Built-in tools (`web_search`, `file_search`, ...) need the provider to run them; the models behind the
gateway run none, so they are refused with a 400 naming the tool, never dropped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from interlock.errors import BadRequest, describe_validation_error
from interlock.types import FunctionDef, NamedToolChoice, Tool, ToolChoice
from interlock.types.base import check_depth

SEPARATOR = "__"
NAME_PATTERN = r"^[a-zA-Z0-9_-]+$"


class ClosedModel(BaseModel):
    """A request object that refuses unknown fields."""

    model_config = ConfigDict(extra="forbid")


class FunctionTool(ClosedModel):
    """A function tool in Responses' flat shape."""

    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _bounded(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_depth(v, "parameters")


class NamespaceTool(ClosedModel):
    """A `namespace` tool: functions grouped under `name`, called as `function_call` items with `namespace`."""

    type: Literal["namespace"]
    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    description: str | None = None
    tools: list[FunctionTool] = Field(min_length=1, max_length=128)


class FunctionChoice(ClosedModel):
    """`tool_choice` that forces one function (`namespace` for a function of a namespace tool)."""

    type: Literal["function"]
    name: str = Field(min_length=1)
    namespace: str | None = None


class ToolNames:
    """The chat name of each function the request offers, and the Responses name and namespace behind it."""

    def __init__(self) -> None:
        self._names: dict[str, tuple[str, str | None]] = {}  # chat name -> (name, namespace)

    def add(self, name: str, namespace: str | None, where: str) -> str:
        """Register a function; its chat name, or a 400 when two functions would share one."""
        chat = f"{namespace}{SEPARATOR}{name}" if namespace else name
        if len(chat) > 64:
            raise BadRequest(
                f"invalid '{where}': '{chat[:80]}' (namespace, '{SEPARATOR}', name) is longer than the 64 "
                "characters a chat model's tool name may have",
                param=where,
                code="invalid_value",
            )
        if chat in self._names:
            raise BadRequest(f"invalid '{where}': a second tool is called '{chat}'", param=where, code="invalid_value")
        self._names[chat] = (name, namespace)
        return chat

    def chat_name(self, name: str, namespace: str | None) -> str:
        """The chat name of a call the client sends back (a namespaced name even if its tool is gone now)."""
        return f"{namespace}{SEPARATOR}{name}" if namespace else name

    def split(self, chat_name: str) -> tuple[str, str | None]:
        """A chat call's name as the Responses item's `name` and `namespace` (None: a top-level function)."""
        return self._names.get(chat_name, (chat_name, None))


def _function(tool: FunctionTool, names: ToolNames, where: str, namespace: NamespaceTool | None = None) -> Tool:
    description = tool.description
    if namespace is not None and namespace.description:
        description = f"{namespace.description} {description or ''}".strip()
    parameters = tool.parameters if tool.parameters is not None else {"type": "object", "properties": {}}
    name = names.add(tool.name, namespace.name if namespace else None, where)
    return Tool(function=FunctionDef(name=name, description=description, parameters=parameters, strict=tool.strict))


def _validated(model: type[ClosedModel], raw: Any, where: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = describe_validation_error(exc)
        raise BadRequest(f"{where}: {err.message}", param=f"{where}.{err.param}", code=err.code) from None


def tool_names(tools: list[Any] | None) -> ToolNames:
    """The names of the request's (already validated) tools."""
    names = ToolNames()
    for i, raw in enumerate(tools or []):
        if raw.get("type") == "namespace":
            for j, inner in enumerate(raw["tools"]):
                names.add(inner["name"], raw["name"], f"tools[{i}].tools[{j}].name")
        else:
            names.add(raw["name"], None, f"tools[{i}].name")
    return names


def chat_tools(tools: list[Any] | None) -> list[Tool] | None:
    """The request's tools as chat tools (namespaces flattened), or a 400 naming the first bad one."""
    if not tools:
        return None
    names = ToolNames()
    out = []
    for i, raw in enumerate(tools):
        kind = raw.get("type") if isinstance(raw, dict) else None
        where = f"tools[{i}]"
        if kind == "function":
            out.append(_function(_validated(FunctionTool, raw, where), names, f"{where}.name"))
        elif kind == "namespace":
            namespace = _validated(NamespaceTool, raw, where)
            for j, inner in enumerate(namespace.tools):
                out.append(_function(inner, names, f"{where}.tools[{j}].name", namespace))
        else:
            raise BadRequest(
                f"tool type {kind!r} at '{where}.type' is not supported: the gateway's models run no built-in "
                "tools; send function (or namespace) tools, or turn the client's built-in tool off",
                param=f"{where}.type",
                code="unsupported_tool",
            )
    return out


def echo(tools: list[Any] | None) -> list[dict[str, Any]]:
    """The tools as a Responses object repeats them."""
    out = []
    for raw in tools or []:
        model: type[ClosedModel] = NamespaceTool if raw.get("type") == "namespace" else FunctionTool
        out.append(model.model_validate(raw).model_dump(exclude_none=True))
    return out


def chat_tool_choice(choice: str | dict[str, Any] | None, tools: list[Tool] | None) -> ToolChoice | None:
    """`tool_choice` as chat's, or a 400 when it names no offered function."""
    if choice is None or isinstance(choice, str):
        if choice == "required" and not tools:
            raise BadRequest(
                "invalid 'tool_choice': 'required' needs at least one tool in 'tools'",
                param="tool_choice",
                code="invalid_value",
            )
        return choice  # type: ignore[return-value]
    if choice.get("type") != "function":
        raise BadRequest(
            f"tool_choice type {choice.get('type')!r} is not supported; use none, auto, required or a function",
            param="tool_choice.type",
            code="unsupported_tool",
        )
    try:
        forced = FunctionChoice.model_validate(choice)
    except ValidationError as exc:
        raise describe_validation_error(exc) from None
    name = ToolNames().chat_name(forced.name, forced.namespace)
    if name not in {t.function.name for t in tools or []}:
        raise BadRequest(
            f"invalid 'tool_choice.name': function '{forced.name}' is not in 'tools'",
            param="tool_choice.name",
            code="invalid_value",
        )
    return NamedToolChoice(function={"name": name})
