"""The poisoning scan: what in a tool's description (or its input schema's descriptions) aims at the model.

A tool definition is read by the model as instructions, so a malicious server can hide orders in it
("tool poisoning"). Flagged, each with the place it was found:
- instructions aimed at the model: overrides ("ignore previous instructions"), secrecy ("do not tell the
  user"), pseudo-tags (`<IMPORTANT>`, `<system>`), "before using this tool …" — the prompt-injection
  detector of the guardrails (`guardrails.detectors.injection`) plus cues specific to tool descriptions;
- hidden unicode: any format character (tag characters, zero-width, bidi controls) — a description has
  no need of one;
- requests to read secrets or files (`~/.ssh`, `id_rsa`, `.env`, credentials, keys);
- requests to send data elsewhere: a URL or e-mail address, "also send", bcc, "send … the conversation to".

A heuristic, so it flags for a human: an admin may approve a flagged server only with `--force` (audited).
It judges the definition, not the server's behaviour: a clean description says nothing of what the tool does.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from interlock.guardrails.detectors.injection import InjectionDetector

INSTRUCTIONS = "instructions aimed at the model"
HIDDEN = "hidden unicode characters"
SECRETS = "asks to read secrets or files"
EXFILTRATION = "asks to send data elsewhere"

_DETECTOR = InjectionDetector(min_score=0.5)
_KIND = {"PROMPT_INJECTION": INSTRUCTIONS, "HIDDEN_UNICODE": HIDDEN, "EXFILTRATION_LINK": EXFILTRATION}

_CUES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        (INSTRUCTIONS, r"<\s*/?\s*(?:important|system|instructions?|secret|hidden|note|admin)\s*>"),
        (INSTRUCTIONS, r"\b(?:ignore|disregard|forget|override)\b[^.]{0,40}\b(?:previous|prior|above|earlier|other)\b"),
        (
            INSTRUCTIONS,
            r"\b(?:do not|don't|never|without)\s+(?:tell|telling|inform|informing|mention|mentioning|reveal|"
            r"revealing|show|showing|notify|notifying)\b",
        ),
        (INSTRUCTIONS, r"\bbefore\s+(?:using|calling|you use|you call)\s+(?:this|any)\s+tool\b"),
        (INSTRUCTIONS, r"\b(?:the (?:assistant|model|ai)|you) (?:must|should|have to) (?:always|first|also)\b"),
        (
            SECRETS,
            r"~/\.|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|(?:^|[\s'\"`(/])\.env\b|\.ssh\b|\.aws/|\.netrc\b|\.npmrc\b|"
            r"\.pgpass\b|/etc/(?:passwd|shadow)\b|\bkeychain\b|\bwallet\.dat\b",
        ),
        (
            SECRETS,
            r"\b(?:read|cat|open|include|pass|send|attach|provide|copy|print|list)\b[^.]{0,40}\b(?:private keys?|"
            r"secret keys?|api keys?|passwords?|credentials?|access tokens?|ssh keys?|env(?:ironment)? variables?|"
            r"config(?:uration)? files?)\b",
        ),
        (EXFILTRATION, r"\bhttps?://|\bwww\.\w"),
        (EXFILTRATION, r"[\w.+-]+@[\w-]+\.[\w.-]+"),
        (EXFILTRATION, r"\bb?cc\b|\balso\s+(?:send|forward|copy|e-?mail|post|upload|transfer)\b"),
        (
            EXFILTRATION,
            r"\b(?:send|forward|upload|post|transmit|exfiltrate|leak|copy)\b[^.]{0,40}\b(?:conversation|chat|"
            r"history|messages|contents?|data|secrets?|keys?|tokens?|credentials|files?)\b[^.]{0,30}\bto\b",
        ),
    )
)


@dataclass(frozen=True, slots=True)
class Flag:
    """One reason to distrust a tool definition, and where in it (never the text itself)."""

    kind: str
    where: str  # "description" or a schema path such as "inputSchema.properties.note.description"

    def __str__(self) -> str:
        return f"{self.kind} (in {self.where})"


def _schema_texts(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """The strings of a JSON schema a model reads: descriptions, titles, defaults, examples, enums."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            if key in ("description", "title", "default", "examples", "enum", "const") and isinstance(value, str):
                yield here, value
            elif key in ("examples", "enum") and isinstance(value, list):
                yield from ((f"{here}[{i}]", v) for i, v in enumerate(value) if isinstance(v, str))
            else:
                yield from _schema_texts(value, here)
            if key == "properties" and isinstance(value, dict):
                yield from ((f"{here}.{name}", name) for name in value if isinstance(name, str))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schema_texts(value, f"{path}[{i}]")


def scan_text(text: str, where: str) -> list[Flag]:
    """The flags of one piece of a definition."""
    kinds: list[str] = []
    if any(unicodedata.category(ch) == "Cf" for ch in text):
        kinds.append(HIDDEN)
    kinds += [_KIND[f.entity] for f in _DETECTOR.scan(text) if f.entity in _KIND]
    kinds += [kind for kind, pattern in _CUES if pattern.search(_visible(text))]
    seen: list[str] = []
    for kind in kinds:
        if kind not in seen:
            seen.append(kind)
    return [Flag(kind, where) for kind in seen]


def scan_tool(name: str, description: str | None, input_schema: Any) -> list[Flag]:
    """Every flag of a tool definition (its name, description and input schema), in order, without repeats."""
    flags = scan_text(name, "name") if any(unicodedata.category(ch) == "Cf" for ch in name) else []
    flags += scan_text(description or "", "description")
    for where, text in _schema_texts(input_schema, "inputSchema"):
        flags += scan_text(text, where)
    unique: list[Flag] = []
    for f in flags:
        if f not in unique:
            unique.append(f)
    return unique


def _visible(text: str) -> str:
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
