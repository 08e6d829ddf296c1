"""GBNF grammars that constrain output to JSON, a JSON schema, or a tool call, and the tool prompt.

A tool call is the JSON object `{"name": <tool>, "arguments": {...}}`, a format a small model produces
reliably. With parallel calls allowed (OpenAI's `parallel_tool_calls`, true unless the client says false)
an answer may hold up to `MAX_PARALLEL_CALLS` of them, one per line; otherwise exactly one. The grammar
guarantees they parse; `parse_tool_calls` reads them.
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
MAX_PARALLEL_CALLS = 8


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


def tool_call_grammar(tools: list[ToolSpec], *, allow_text: bool, parallel: bool = False) -> str:
    """One call of one of `tools` (with `parallel`, 1 to `MAX_PARALLEL_CALLS` of them, one per line);
    with `allow_text`, plain prose is allowed instead."""
    if not tools:
        raise SchemaError("no tools to call")
    schema = {"anyOf": [_call_schema(t) for t in tools]}
    gbnf = _convert(schema, prop_order=["name", "arguments"])
    if parallel:
        more = f'("\\n" interlock-one){{0,{MAX_PARALLEL_CALLS - 1}}}'
        gbnf = _ROOT_RULE.sub("interlock-one ::= ", gbnf) + f"\nroot ::= interlock-one {more}\n"
    if not allow_text:
        return gbnf
    return _ROOT_RULE.sub("interlock-call ::= ", gbnf) + "\n" + _TEXT_RULES


def describe_tools(tools: list[ToolSpec], *, required: bool, forced: str | None = None, parallel: bool = False) -> str:
    """System-prompt text that teaches the call format, for templates that know no tools."""
    lines = ["You can call these tools:"]
    for t in tools:
        entry: dict[str, Any] = {"name": t.name, "parameters": t.parameters}
        if t.description:
            entry["description"] = t.description
        lines.append(json.dumps(entry, ensure_ascii=False))
    lines.append('To call a tool, reply with only a JSON object: {"name": "<tool name>", "arguments": {<arguments>}}.')
    if parallel:
        lines.append("To call several tools at once, write one such JSON object per line.")
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
    calls = parse_tool_calls(text)
    return calls[0] if calls is not None and len(calls) == 1 else None


_DECODER = json.JSONDecoder()


def parse_tool_calls(text: str) -> list[tuple[str, str]] | None:
    """Every `(name, arguments as a JSON string)` of grammar-constrained output (one object per line), or
    None if any is truncated or malformed: a partial list would run some calls and silently drop others."""
    calls: list[tuple[str, str]] = []
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return calls or None
        try:
            data, at = _DECODER.raw_decode(text, at)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return None
        calls.append((data["name"], json.dumps(data.get("arguments", {}), ensure_ascii=False)))
