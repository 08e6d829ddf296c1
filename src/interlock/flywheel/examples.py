"""Examples: a capture (or an imported line) as one chat-format training example, and its normalised prompt.

An example is OpenAI's fine-tuning shape, `{"messages": [...], "tools"?: [...]}`, whose last message is the
assistant's answer. Two examples have the same prompt when their messages before the answer match once each
text is lower-cased and its whitespace collapsed (and they offer the same tools): `prompt_hash` is the key
deduplication and the train/eval split use.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
Example = dict[str, Any]


class BadExample(ValueError):
    """An example that is not a chat conversation ending with the assistant's answer."""


def text_of(message: dict[str, Any]) -> str:
    """The text of a message: its content string, or its text parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def normalise(text: str) -> str:
    """Lower case, whitespace collapsed, trimmed."""
    return " ".join(text.split()).lower()  # str.split: a tenth of the time of re.sub(r"\s+") on prose


def prompt_hash(request: dict[str, Any]) -> str:
    """The hash of a request's normalised prompt: its messages' roles and texts, and its tools' names."""
    parts = [
        f"{m.get('role', '')}:{normalise(text_of(m))}" for m in request.get("messages") or () if isinstance(m, dict)
    ]
    tools = sorted(
        str((t.get("function") or {}).get("name", "")) for t in request.get("tools") or () if isinstance(t, dict)
    )
    return hashlib.sha256("\x1f".join([*parts, "tools:" + ",".join(tools)]).encode()).hexdigest()


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if v is not None}


def example_of(request: dict[str, Any], answer: dict[str, Any]) -> Example:
    """The example of a captured request and the answer to train on."""
    messages = [_clean(m) for m in request.get("messages") or () if isinstance(m, dict)]
    example: Example = {"messages": [*messages, _clean(answer)]}
    if request.get("tools"):
        example["tools"] = request["tools"]
    return example


def check(example: Any) -> Example:
    """`example` if it is a valid example (BadExample says what is wrong otherwise)."""
    if not isinstance(example, dict):
        raise BadExample('each line must be a JSON object with a "messages" list')
    messages = example.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        raise BadExample('"messages" must be a list of at least a prompt and the assistant\'s answer')
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise BadExample(f"messages[{i}] needs a role of {', '.join(sorted(ROLES))}")
        if m.get("content") is None and not m.get("tool_calls"):
            raise BadExample(f"messages[{i}] has neither content nor tool_calls")
    if messages[-1].get("role") != "assistant":
        raise BadExample("the last message must be the assistant's answer")
    tools = example.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise BadExample('"tools" must be a list')
    out: Example = {"messages": messages}
    if tools:
        out["tools"] = tools
    return out


def prompt_of(example: Example) -> dict[str, Any]:
    """The request part of an example: every message but the answer, and the tools."""
    prompt: dict[str, Any] = {"messages": example["messages"][:-1]}
    if example.get("tools"):
        prompt["tools"] = example["tools"]
    return prompt


def canonical(example: Example) -> str:
    """The example as canonical JSON (sorted keys), for content hashes."""
    return orjson.dumps(example, option=orjson.OPT_SORT_KEYS).decode()
