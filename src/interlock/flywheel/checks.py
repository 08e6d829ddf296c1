"""Deterministic checks of a model's answer against the expected one; each scores from 0 (fail) to 1 (pass).

| check | passes when |
|---|---|
| `exact` | the answer's text equals the expected text (surrounding whitespace ignored) |
| `contains` | the answer's text contains the expected text |
| `regex:PATTERN` | the answer's text matches PATTERN (`re.search`) |
| `json` | the answer's text is JSON (a Markdown code fence around it is allowed) |
| `json_schema:FILE` | the answer's JSON is valid against the JSON Schema in FILE |
| `fields:a,b` | scores the share of fields a, b equal in the answer's and the expected JSON objects |

(`fields` alone compares every field of the expected object.)
| `tool_call` | the answer calls the same functions, in order, with equal (parsed) arguments |
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?\s*```\s*$", re.S)
KINDS = ("exact", "contains", "regex", "json", "json_schema", "fields", "tool_call")


class CheckError(ValueError):
    """A check that cannot be built as written."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What a check compares: an answer's text and its tool calls (`{"name", "arguments"}` each)."""

    content: str
    tool_calls: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(cls, message: dict[str, Any]) -> Answer:
        """The answer in an assistant message (the OpenAI shape)."""
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        calls = tuple(
            {
                "name": str((c.get("function") or {}).get("name", "")),
                "arguments": (c.get("function") or {}).get("arguments", ""),
            }
            for c in message.get("tool_calls") or ()
            if isinstance(c, dict)
        )
        return cls(content or "", calls)


def parse_json(text: str) -> Any:
    """The JSON in `text` (inside a Markdown fence or not); ValueError if there is none."""
    m = _FENCE.match(text)
    return json.loads(m[1] if m else text)


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            return raw
    return raw


@dataclass(frozen=True)
class Check:
    """One check, as named on the command line (`name`)."""

    name: str
    kind: str
    argument: str = ""
    _pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    _schema: Any = field(default=None, repr=False, compare=False)

    def score(self, answer: Answer, expected: Answer) -> float:
        """From 0 to 1: how well `answer` passes against `expected`."""
        text = answer.content
        if self.kind == "exact":
            return float(text.strip() == expected.content.strip())
        if self.kind == "contains":
            return float(expected.content.strip() in text)
        if self.kind == "regex":
            assert self._pattern is not None
            return float(self._pattern.search(text) is not None)
        if self.kind == "json":
            try:
                parse_json(text)
            except ValueError:
                return 0.0
            return 1.0
        if self.kind == "json_schema":
            import jsonschema  # type: ignore[import-untyped]  # the MCP SDK's dependency

            try:
                jsonschema.validate(parse_json(text), self._schema)
            except (ValueError, jsonschema.ValidationError):
                return 0.0
            return 1.0
        if self.kind == "fields":
            return self._fields(text, expected.content)
        return self._tool_calls(answer, expected)

    def _fields(self, text: str, expected_text: str) -> float:
        try:
            want = parse_json(expected_text)
        except ValueError:
            return 0.0
        if not isinstance(want, dict):
            return 0.0
        names = [f for f in self.argument.split(",") if f] or list(want)
        if not names:
            return 0.0
        try:
            got = parse_json(text)
        except ValueError:
            return 0.0
        if not isinstance(got, dict):
            return 0.0
        return sum(1 for n in names if n in got and n in want and got[n] == want[n]) / len(names)

    @staticmethod
    def _tool_calls(answer: Answer, expected: Answer) -> float:
        if len(answer.tool_calls) != len(expected.tool_calls):
            return 0.0
        for got, want in zip(answer.tool_calls, expected.tool_calls, strict=True):
            if got["name"] != want["name"] or _arguments(got["arguments"]) != _arguments(want["arguments"]):
                return 0.0
        return 1.0


def parse_check(text: str) -> Check:
    """A check from its command-line form (see the module docstring)."""
    kind, _, argument = text.partition(":")
    if kind not in KINDS:
        raise CheckError(
            f"check {text!r}: use one of exact, contains, regex:PATTERN, json, json_schema:FILE, fields:a,b, tool_call"
        )
    if kind == "regex":
        if not argument:
            raise CheckError("check regex: give a pattern, as regex:PATTERN")
        try:
            return Check(text, kind, argument, _pattern=re.compile(argument))
        except re.error as exc:
            raise CheckError(f"check {text!r}: not a valid regular expression ({exc})") from None
    if kind == "json_schema":
        path = Path(argument)
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CheckError(f"check {text!r}: cannot read {path} ({exc.strerror})") from None
        except ValueError as exc:
            raise CheckError(f"check {text!r}: {path} is not JSON ({exc})") from None
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise CheckError(f"check {text!r}: {path} is not a valid JSON Schema ({exc.message})") from None
        return Check(text, kind, argument, _schema=schema)
    if argument and kind not in ("fields",):
        raise CheckError(f"check {text!r}: {kind} takes no argument")
    return Check(text, kind, argument)
