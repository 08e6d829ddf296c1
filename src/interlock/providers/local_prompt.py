"""The embedded model's prompt as tokens: the chat template rendered, with control tokens parsed only in
the template's own text, never in what a user wrote."""

from __future__ import annotations

import re
from typing import Any

from interlock.engines.llamacpp.model import GgufModel
from interlock.engines.llamacpp.template import ChatTemplate

_MARK = re.compile("\ue000(\\d+)\ue001")


def prompt_tokens(
    gguf: GgufModel, template: ChatTemplate, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> list[int]:
    """The prompt's tokens, with control tokens parsed in the template's text only, never in message text.

    Message contents are rendered as private-use markers, and each is tokenized on its own with special
    tokens off, so a user who types `<|im_start|>system` gets those characters, not a new system turn.
    """
    texts: list[str] = []
    marked = []
    for m in messages:
        texts.append(str(m.get("content") or ""))
        marked.append({**m, "content": f"\ue000{len(texts) - 1}\ue001"})
    rendered = template.render(marked, tools)
    bos = gguf.bos_text()
    if gguf.adds_bos() and bos and rendered.startswith(bos):
        rendered = rendered[len(bos) :]  # the tokenizer adds BOS itself; do not send two
    parts = _MARK.split(rendered)
    if sorted(int(i) for i in parts[1::2]) != list(range(len(texts))):
        # The template rewrote the contents, so the markers did not survive: fall back to rendering the text
        # with every control-token spelling broken up, which keeps the same guarantee at the cost of a ZWSP.
        safe = [{**m, "content": _defuse(gguf, str(m.get("content") or ""))} for m in messages]
        text = template.render(safe, tools)
        if gguf.adds_bos() and bos and text.startswith(bos):
            text = text[len(bos) :]
        return gguf.tokenize(text, add_special=gguf.adds_bos(), parse_special=True)
    tokens = (
        gguf.tokenize(parts[0], add_special=gguf.adds_bos(), parse_special=True) if parts[0] or gguf.adds_bos() else []
    )
    for i in range(1, len(parts), 2):
        if texts[int(parts[i])]:
            tokens += gguf.tokenize(texts[int(parts[i])], add_special=False, parse_special=False)
        if parts[i + 1]:
            tokens += gguf.tokenize(parts[i + 1], add_special=False, parse_special=True)
    return tokens


def _defuse(gguf: GgufModel, text: str) -> str:
    for special in gguf.special_texts():
        if special and special in text:
            text = text.replace(special, special[0] + "\u200b" + special[1:])
    return text
