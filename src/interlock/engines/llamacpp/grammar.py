"""GBNF grammars that constrain output to JSON, a JSON schema, or a tool call, and the tool prompt.

A tool call is the JSON object `{"name": <tool>, "arguments": {...}}`: one call per answer, which
a small model can produce reliably. The grammar guarantees it parses; `parse_tool_call` reads it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

# The converter lets raw control characters into strings, which strict JSON parsers reject.
_LOOSE_CHAR = re.compile(r'^char ::= \[\^"\\\\\]', re.MULTILINE)
_STRICT_CHAR = r'char ::= [^"\\\\\\x7F\\x00-\\x1F]'
_ROOT_RULE = re.compile(r"^root ::= ", re.MULTILINE)
# "auto" lets the model answer in prose instead; prose must not open with "{" so the two never mix.
_TEXT_RULES = "root ::= interlock-call | interlock-text\ninterlock-text ::= [^{] [^\\x00]*\n"


class SchemaError(ValueError):
    """A JSON schema the grammar converter cannot handle."""


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call, as plain data."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def _convert(schema: dict[str, Any], prop_order: list[str] | None = None) -> str:
    try:
        gbnf = json_schema_to_gbnf(json.dumps(schema), prop_order=prop_order)
    except Exception as exc:  # the converter raises bare exceptions of several kinds
        raise SchemaError(f"unsupported JSON schema: {exc}") from exc
    return _LOOSE_CHAR.sub(_STRICT_CHAR, gbnf)


def json_object_grammar() -> str:
    """Any JSON object."""
    return _convert({"type": "object"})


def json_schema_grammar(schema: dict[str, Any]) -> str:
    """JSON matching `schema`."""
    return _convert(schema)


def _call_schema(tool: ToolSpec) -> dict[str, Any]:
    params = tool.parameters or {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": params},
        "required": ["name", "arguments"],
    }


def tool_call_grammar(tools: list[ToolSpec], *, allow_text: bool) -> str:
    """One call of one of `tools`; with `allow_text`, plain prose is allowed instead."""
    if not tools:
        raise SchemaError("no tools to call")
    schema = {"anyOf": [_call_schema(t) for t in tools]}
    gbnf = _convert(schema, prop_order=["name", "arguments"])
    if not allow_text:
        return gbnf
    return _ROOT_RULE.sub("interlock-call ::= ", gbnf) + "\n" + _TEXT_RULES


def describe_tools(tools: list[ToolSpec], *, required: bool, forced: str | None = None) -> str:
    """System-prompt text that teaches the call format, for templates that know no tools."""
    lines = ["You can call these tools:"]
    for t in tools:
        entry: dict[str, Any] = {"name": t.name, "parameters": t.parameters}
        if t.description:
            entry["description"] = t.description
        lines.append(json.dumps(entry, ensure_ascii=False))
    lines.append('To call a tool, reply with only a JSON object: {"name": "<tool name>", "arguments": {<arguments>}}.')
    if forced:
        lines.append(f'You must call the tool "{forced}".')
    elif required:
        lines.append("You must call one of the tools.")
    else:
        lines.append("If no tool is needed, answer in plain text.")
    return "\n".join(lines)


def looks_like_call(text: str) -> bool:
    """Whether output text is (the start of) a tool call rather than prose."""
    return text.lstrip().startswith("{")


def parse_tool_call(text: str) -> tuple[str, str] | None:
    """`(name, arguments as a JSON string)` from grammar-constrained output, or None if truncated."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    return data["name"], json.dumps(data.get("arguments", {}), ensure_ascii=False)
