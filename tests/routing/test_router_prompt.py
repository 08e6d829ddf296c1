"""What the router reads of a request: the bounded conversation text and the prompt statistics."""

from __future__ import annotations

import numpy as np

from interlock.routing.router.prompt import (
    EARLIER_CHARS,
    EARLIER_TURNS,
    LAST_TURN_CHARS,
    STAT_NAMES,
    conversation_text,
    prompt_stats,
    stats_of,
)


def test_one_message_is_its_text_and_system_prompts_are_left_out() -> None:
    assert conversation_text([("user", "What is 2+2?")]) == "What is 2+2?"
    assert conversation_text([("system", "You are terse."), ("user", "What is 2+2?")]) == "What is 2+2?"
    assert conversation_text([]) == ""


def test_the_last_user_turn_comes_last_after_a_bounded_summary() -> None:
    turns = [("user", f"question {i} " + "x" * 1000) if i % 2 == 0 else ("assistant", f"answer {i}") for i in range(12)]
    text = conversation_text([*turns, ("user", "the real question"), ("assistant", "(a partial answer)")])
    lines = text.split("\n")
    assert lines[-1] == "the real question"
    assert len(lines) == EARLIER_TURNS + 1
    assert lines[0].startswith("[user] question 8") and lines[1] == "[assistant] answer 9"
    assert all(len(line) <= len("[assistant] ") + EARLIER_CHARS for line in lines[:-1])
    huge = conversation_text([("user", "y" * (3 * LAST_TURN_CHARS))])
    assert len(huge) == LAST_TURN_CHARS


def test_stats_tell_structure_apart() -> None:
    mcq = "Compute 12 * 7 + 3^2.\nA. 93\nB. 84\nC. 90\nD. 87\nAnswer:"
    chat = "Tell me something nice about autumn"
    s = dict(zip(STAT_NAMES, stats_of(mcq), strict=True))
    c = dict(zip(STAT_NAMES, stats_of(chat), strict=True))
    assert s["options"] == 0.4 and s["numeric_options"] == 1.0 and c["options"] == 0.0
    assert s["digit_fraction"] > 0.1 > c["digit_fraction"] == 0.0
    assert s["log_operators"] > c["log_operators"] == 0.0
    multi = conversation_text([("user", "hi"), ("assistant", "hello"), ("user", chat)])
    assert dict(zip(STAT_NAMES, stats_of(multi), strict=True))["turns"] == 0.2
    block = prompt_stats([mcq, chat, ""])
    assert block.shape == (3, len(STAT_NAMES)) and block.dtype == np.float32
    assert np.isfinite(block).all()
