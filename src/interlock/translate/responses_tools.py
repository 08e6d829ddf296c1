"""The Responses API's tools <-> chat tools: function tools, namespaces of them, custom tools, tool search.

A `namespace` tool groups functions under one name (Codex sends its sub-agent tools so). Chat has no
namespaces, so each function of one becomes a chat tool named `<namespace>__<name>` (the separator the
MCP gateway uses for `<server>__<tool>`), and `ToolNames` turns a chat call's name back into the
`name` and `namespace` of the Responses `function_call` item, and an item sent back into the chat name.

A `custom` tool takes free text instead of JSON arguments, optionally in a grammar (Codex's freeform
`apply_patch` is one, with a Lark grammar). A chat model calls functions only, so it becomes a function
with one string argument, `input`, whose description carries the tool's format and grammar; its calls
come back as `custom_tool_call` items whose `input` is that string (`custom_input`). The grammar reaches
the model as text: nothing constrains its decoding to it, so a client that parses the input (as Codex
parses a patch) is the check.

A `tool_search` tool with `execution: "client"` lets the model ask the client for tools it has not been
shown: it is a function `tool_search` whose calls come back as `tool_search_call` items; the client runs
the search and sends the definitions it found in a `tool_search_output` item, and from then on those
tools are offered to the model with the request's own (`offered`). A tool the request marks
`defer_loading` is offered only once such an item loads it.

Built-in tools (`web_search`, `file_search`, a tool search run by the provider, ...) need the provider to
run them; the models behind the gateway run none, so they are refused with a 400 naming the tool, never
dropped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from interlock.errors import BadRequest, describe_validation_error
from interlock.types import FunctionDef, NamedToolChoice, Tool, ToolChoice
from interlock.types.base import MAX_TOOLS, check_depth

SEPARATOR = "__"
NAME_PATTERN = r"^[a-zA-Z0-9_-]+$"
Kind = Literal["function", "custom", "tool_search"]  # what a chat call's item becomes
SEARCH = "tool_search"  # the chat name of a client-run tool search


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
    defer_loading: bool | None = None
    allowed_callers: list[Literal["direct", "programmatic"]] | None = None
    output_schema: dict[str, Any] | None = None  # describes what the client returns; nothing to do here

    @field_validator("parameters", "output_schema")
    @classmethod
    def _bounded(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_depth(v, "parameters")


class TextFormat(ClosedModel):
    """A custom tool's input is unconstrained text."""

    type: Literal["text"]


class GrammarFormat(ClosedModel):
    """A custom tool's input follows a grammar (`lark` or `regex` syntax)."""

    type: Literal["grammar"]
    syntax: Literal["lark", "regex"]
    definition: str = Field(min_length=1, max_length=100_000)


class CustomTool(ClosedModel):
    """A `custom` tool: called with free text (`input`), in `format` when one is given."""

    type: Literal["custom"]
    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    description: str | None = None
    format: Annotated[TextFormat | GrammarFormat, Field(discriminator="type")] | None = None
    defer_loading: bool | None = None
    allowed_callers: list[Literal["direct", "programmatic"]] | None = None


class NamespaceTool(ClosedModel):
    """A `namespace` tool: function and custom tools grouped under `name`, their calls' items carry `namespace`."""

    type: Literal["namespace"]
    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    description: str | None = None
    tools: list[Annotated[FunctionTool | CustomTool, Field(discriminator="type")]] = Field(min_length=1, max_length=128)
    defer_loading: bool | None = None


class ToolSearchTool(ClosedModel):
    """`tool_search`: the model searches tools not loaded yet; only a client-run search (`execution:
    "client"`) can be served here."""

    type: Literal["tool_search"]
    execution: Literal["server", "client"] = "server"
    description: str | None = None
    parameters: dict[str, Any] | None = None

    @field_validator("parameters")
    @classmethod
    def _bounded(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_depth(v, "parameters")


INPUT = "input"  # a custom tool's one argument in its chat function


def custom_input(arguments: str) -> str:
    """A chat call's arguments as a custom tool's input: its `input` string, or the arguments as they are
    when the model wrote plain text instead of the JSON object."""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(parsed, dict) and isinstance(parsed.get(INPUT), str):
        return str(parsed[INPUT])
    return arguments


def custom_arguments(text: str) -> str:
    """A custom tool call's input as chat arguments."""
    return orjson.dumps({INPUT: text}).decode()


def search_arguments(arguments: str) -> Any:
    """A tool search call's chat arguments as the item's `arguments` (a JSON value; the text as it is when
    it is not JSON)."""
    if not arguments:
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments


class FunctionChoice(ClosedModel):
    """`tool_choice` that forces one function (`namespace` for a function of a namespace tool)."""

    type: Literal["function"]
    name: str = Field(min_length=1)
    namespace: str | None = None


class ToolNames:
    """The chat name of each function the request offers, and the Responses name, namespace and kind of
    item behind it."""

    def __init__(self) -> None:
        self._names: dict[str, tuple[str, str | None]] = {}  # chat name -> (name, namespace)
        self._kinds: dict[str, Kind] = {}  # chat name -> its kind, where not "function"

    def add(self, name: str, namespace: str | None, where: str, kind: Kind = "function") -> str:
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
        if kind != "function":
            self._kinds[chat] = kind
        return chat

    def kind(self, chat_name: str) -> Kind:
        """What a chat call's item is: a `function_call`, `custom_tool_call` or `tool_search_call`."""
        return self._kinds.get(chat_name, "function")

    def chat_name(self, name: str, namespace: str | None) -> str:
        """The chat name of a call the client sends back (a namespaced name even if its tool is gone now)."""
        return f"{namespace}{SEPARATOR}{name}" if namespace else name

    def split(self, chat_name: str) -> tuple[str, str | None]:
        """A chat call's name as the Responses item's `name` and `namespace` (None: a top-level function)."""
        return self._names.get(chat_name, (chat_name, None))


Offered = tuple[Any, str, bool]  # a tool as sent, where it was sent, whether it is deferred


def _key(raw: Any) -> tuple[Any, Any] | None:
    return (raw.get("type"), raw.get("name")) if isinstance(raw, dict) else None


def offered(tools: list[Any] | None, items: str | list[Any]) -> list[Offered]:
    """The request's tools, and after them those that `tool_search_output` items in the input loaded.

    A loaded tool the request also lists (deferred, typically) is that entry, no longer deferred."""
    out = [
        (raw, f"tools[{i}]", isinstance(raw, dict) and raw.get("defer_loading") is True)
        for i, raw in enumerate(tools or [])
    ]
    at = {_key(raw): n for n, (raw, _, _) in enumerate(out) if _key(raw) is not None}
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict) or item.get("type") != "tool_search_output":
            continue
        loaded = item.get("tools")
        if not isinstance(loaded, list):
            raise BadRequest(
                f"invalid 'input[{i}].tools': expected the list of tools the search loaded, "
                f"got {type(loaded).__name__}",
                param=f"input[{i}].tools",
                code="invalid_type",
            )
        for j, raw in enumerate(loaded):
            key = _key(raw)
            if key is not None and key in at:
                found, where, _ = out[at[key]]
                out[at[key]] = (found, where, False)
                continue
            if key is not None:
                at[key] = len(out)
            out.append((raw, f"input[{i}].tools[{j}]", False))
            if len(out) > MAX_TOOLS:
                raise BadRequest(
                    f"invalid 'input[{i}].tools': the request and its loaded tools hold more than {MAX_TOOLS} tools",
                    param=f"input[{i}].tools",
                    code="invalid_value",
                )
    return out


def _function(tool: FunctionTool, names: ToolNames, where: str, namespace: NamespaceTool | None = None) -> Tool:
    description = tool.description
    if namespace is not None and namespace.description:
        description = f"{namespace.description} {description or ''}".strip()
    parameters = tool.parameters if tool.parameters is not None else {"type": "object", "properties": {}}
    name = names.add(tool.name, namespace.name if namespace else None, where)
    return Tool(function=FunctionDef(name=name, description=description, parameters=parameters, strict=tool.strict))


def _custom(tool: CustomTool, names: ToolNames, where: str, namespace: NamespaceTool | None = None) -> Tool:
    fmt = tool.format
    if isinstance(fmt, GrammarFormat):
        how = f"text that must match this {fmt.syntax} grammar:\n{fmt.definition}"
    else:
        how = "free text"
    description = f"{tool.description or ''}\n\nCall it with one argument, `{INPUT}`: {how}".lstrip()
    if namespace is not None and namespace.description:
        description = f"{namespace.description} {description}"
    parameters = {
        "type": "object",
        "properties": {INPUT: {"type": "string"}},
        "required": [INPUT],
        "additionalProperties": False,
    }
    name = names.add(tool.name, namespace.name if namespace else None, where, "custom")
    return Tool(function=FunctionDef(name=name, description=description, parameters=parameters))


def _search(tool: ToolSearchTool, names: ToolNames, where: str) -> Tool:
    if tool.execution != "client":
        raise BadRequest(
            f"a tool_search at '{where}' with execution '{tool.execution}' is run by the provider, and the "
            "gateway's models run no built-in tools; send it with execution 'client' (the client searches) "
            "or turn it off",
            param=f"{where}.execution",
            code="unsupported_tool",
        )
    description = tool.description or "Search the tools that are not loaded yet; the ones found are loaded."
    parameters = tool.parameters or {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "What the tool should do."}},
        "required": ["query"],
    }
    names.add(SEARCH, None, f"{where}.type", "tool_search")
    return Tool(function=FunctionDef(name=SEARCH, description=description, parameters=parameters))


def _validated(model: type[ClosedModel], raw: Any, where: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = describe_validation_error(exc)
        raise BadRequest(f"{where}: {err.message}", param=f"{where}.{err.param}", code=err.code) from None


def _direct(tool: FunctionTool | CustomTool) -> bool:
    """Whether the model may call the tool itself (`allowed_callers` without "direct": only code the
    provider runs may, and the gateway's models run none)."""
    return tool.allowed_callers is None or "direct" in tool.allowed_callers


def _chat(tools: list[Offered]) -> tuple[list[Tool], ToolNames]:
    """Every tool checked and named; the chat tools of those offered (not deferred, callable directly)."""
    names = ToolNames()
    out = []
    for raw, where, deferred in tools:
        kind = raw.get("type") if isinstance(raw, dict) else None
        made: list[tuple[bool, Tool]]
        if kind == "function":
            tool = _validated(FunctionTool, raw, where)
            made = [(_direct(tool), _function(tool, names, f"{where}.name"))]
        elif kind == "namespace":
            namespace = _validated(NamespaceTool, raw, where)
            made = [
                (
                    _direct(inner),
                    _custom(inner, names, f"{where}.tools[{j}].name", namespace)
                    if isinstance(inner, CustomTool)
                    else _function(inner, names, f"{where}.tools[{j}].name", namespace),
                )
                for j, inner in enumerate(namespace.tools)
            ]
        elif kind == "custom":
            custom = _validated(CustomTool, raw, where)
            made = [(_direct(custom), _custom(custom, names, f"{where}.name"))]
        elif kind == "tool_search":
            made = [(True, _search(_validated(ToolSearchTool, raw, where), names, where))]
        else:
            raise BadRequest(
                f"tool type {kind!r} at '{where}.type' is not supported: the gateway's models run no built-in "
                "tools; send function, namespace, custom or client-run tool_search tools, or turn the client's "
                "built-in tool off",
                param=f"{where}.type",
                code="unsupported_tool",
            )
        if not deferred:
            out += [tool for direct, tool in made if direct]
    return out, names


def chat_tools(tools: list[Any] | None, items: str | list[Any]) -> tuple[list[Tool] | None, ToolNames]:
    """The request's tools and those its input loaded (`offered`) as chat tools (namespaces flattened,
    deferred ones left out), with the names that turn the model's calls back into items; or a 400 naming
    the first bad one. One pass: the answer is rendered with these names, nothing is checked twice."""
    made, names = _chat(offered(tools, items))
    return made or None, names


def echo(tools: list[Any] | None) -> list[dict[str, Any]]:
    """The tools as a Responses object repeats them."""
    kinds: dict[str, type[ClosedModel]] = {
        "namespace": NamespaceTool,
        "custom": CustomTool,
        "tool_search": ToolSearchTool,
    }
    return [
        kinds.get(raw.get("type"), FunctionTool).model_validate(raw).model_dump(exclude_none=True)
        for raw in tools or []
    ]


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
    kind = choice.get("type")
    if kind not in ("function", "custom"):
        raise BadRequest(
            f"tool_choice type {kind!r} is not supported; use none, auto, required, a function or a custom tool",
            param="tool_choice.type",
            code="unsupported_tool",
        )
    try:
        forced = FunctionChoice.model_validate({**choice, "type": "function"})
    except ValidationError as exc:
        raise describe_validation_error(exc) from None
    name = ToolNames().chat_name(forced.name, forced.namespace)
    if name not in {t.function.name for t in tools or []}:
        raise BadRequest(
            f"invalid 'tool_choice.name': {kind} '{forced.name}' is not in 'tools'",
            param="tool_choice.name",
            code="invalid_value",
        )
    return NamedToolChoice(function={"name": name})
