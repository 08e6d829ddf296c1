"""What the router reads of a request: a bounded conversation text and prompt statistics that carry difficulty.

`conversation_text` turns a chat into one bounded string: the last user turn in full, preceded by a short
summary of the earlier turns (the last few, each cut to a prefix, marked with its role). A one-message
conversation is exactly its text, so rows with `"prompt"` and rows with `"messages"` embed the same way.

The embedders read the last turn and the summary apart and add them, the summary at a lower weight
(`features.embed_conversations`), so a long history cannot drown a short question.

`prompt_stats` is a small vector of surface statistics (length, digits and operators, options, question
structure, constraint words, turns). Topic vectors say *what* a prompt is about; these say something
about *how hard* it is, which is what transfers to subjects a router has not seen (bench/router).
Changing them changes every router's features, so `STATS_VERSION` is recorded in router files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]

STATS_VERSION = "prompt-stats-1"
EARLIER_TURNS = 4  # how many earlier turns the summary keeps (the most recent ones)
EARLIER_CHARS = 200  # the prefix kept of each earlier turn
LAST_TURN_CHARS = 8000  # the tail kept of the last user turn (the embedders read only its last tokens anyway)
_INSTRUCTION_ROLES = frozenset({"system", "developer"})
_TURN_MARK = re.compile(r"^\[(?:user|assistant|tool)\] ", re.MULTILINE)

_OPTION = re.compile(r"^\s*\(?([A-Ja-j])[.):]\s+\S", re.MULTILINE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_OPERATOR = re.compile("[-+*/=^<>%\u00d7\u00f7\u221a\u2211\u222b\u2264\u2265]")
_LATEX = re.compile(r"\\[a-zA-Z]+|\$[^$]+\$")
_CODE = re.compile(r"```|\bdef \w+\(|\breturn\b|[{};]\s*$|#include|\bclass \w+", re.MULTILINE)
_CONSTRAINT = re.compile(
    r"\b(?:must|should|exactly|at least|at most|no more than|without|only|each|every|ensure|format|"
    r"step by step|explain|justify|prove|list|words?|sentences?|paragraphs?)\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"\b(?:not|except|false|incorrect|least|never)\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

STAT_NAMES = (
    "log_chars",
    "log_words",
    "log_lines",
    "digit_fraction",
    "log_numbers",
    "log_operators",
    "latex",
    "code",
    "options",
    "numeric_options",
    "log_stem_chars",
    "log_option_chars",
    "question_marks",
    "log_constraints",
    "negation",
    "mean_word_length",
    "long_word_fraction",
    "upper_fraction",
    "turns",
)


def conversation_text(messages: Sequence[tuple[str, str]]) -> str:
    """The bounded text the router reads of a conversation of (role, text) pairs.

    The last user turn (its last `LAST_TURN_CHARS` characters) comes last, because the embedders read the
    end of a text; before it, the `EARLIER_TURNS` turns preceding it, each as `[role] ` and its first
    `EARLIER_CHARS` characters on one line. Turns after the last user turn (rare) are ignored, and so are
    system and developer messages: an application sends the same one with every request, and training rows
    with a bare `"prompt"` have none, so leaving them out keeps traffic and training alike.
    """
    turns = [(role, text) for role, text in messages if text.strip() and role not in _INSTRUCTION_ROLES]
    last = max((i for i, (role, _) in enumerate(turns) if role == "user"), default=len(turns) - 1)
    if last < 0:
        return ""
    final = turns[last][1][-LAST_TURN_CHARS:]
    earlier = turns[max(0, last - EARLIER_TURNS) : last]
    if not earlier:
        return final
    summary = "\n".join(f"[{role}] {' '.join(text.split())[:EARLIER_CHARS]}" for role, text in earlier)
    return f"{summary}\n{final}"


def split_conversation(text: str) -> tuple[str, str]:
    """(summary, last turn) of a `conversation_text`: its leading `[role] ` lines, and the rest."""
    lines = text.split("\n")
    n = 0
    while n < len(lines) - 1 and _TURN_MARK.match(lines[n]):
        n += 1
    return "\n".join(lines[:n]), "\n".join(lines[n:])


def _log(n: float) -> float:
    return math.log1p(n) / math.log(1000.0)


def stats_of(text: str) -> list[float]:
    """The statistics of one text, in `STAT_NAMES` order, each roughly in [0, 1].

    Of a conversation, every statistic describes the last user turn, except `turns` (the summary's turns).
    """
    summary, text = split_conversation(text)
    chars = max(len(text), 1)
    words = _WORD.findall(text)
    options = list(_OPTION.finditer(text))
    stem = text[: options[0].start()] if options else text
    option_text = text[options[0].start() :] if options else ""
    option_lines = [ln for ln in option_text.splitlines() if _OPTION.match(ln)]
    numeric = sum(1 for ln in option_lines if _NUMBER.search(ln[3:]))
    letters = sum(c.isalpha() for c in text)
    return [
        _log(len(text)),
        _log(len(words)),
        _log(text.count("\n")),
        sum(c.isdigit() for c in text) / chars,
        _log(len(_NUMBER.findall(text))),
        _log(len(_OPERATOR.findall(text))),
        min(len(_LATEX.findall(text)), 10) / 10,
        min(len(_CODE.findall(text)), 10) / 10,
        min(len(options), 10) / 10,
        numeric / len(option_lines) if option_lines else 0.0,
        _log(len(stem)),
        _log(len(option_text) / max(len(option_lines), 1)),
        min(stem.count("?"), 5) / 5,
        _log(len(_CONSTRAINT.findall(text))),
        min(len(_NEGATION.findall(stem)), 5) / 5,
        min(sum(map(len, words)) / max(len(words), 1), 15) / 15,
        sum(len(w) >= 10 for w in words) / max(len(words), 1),
        sum(c.isupper() for c in text) / max(letters, 1),
        min(len(_TURN_MARK.findall(summary)), 10) / 10,
    ]


def prompt_stats(texts: Sequence[str]) -> Floats:
    """`stats_of` for each text, shape (len(texts), len(STAT_NAMES)), float32."""
    return np.asarray([stats_of(t) for t in texts], dtype=np.float32).reshape(len(texts), len(STAT_NAMES))
