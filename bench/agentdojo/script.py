"""The scripted always-hijacked model: what it answers at each step of one AgentDojo case.

A case's script is the user task's ground-truth calls, then the injection task's calls (empty with no
attack), and the user task's answer text. The model makes one call per step, in that order; the step is the
number of assistant messages already in the conversation, so re-sending the same conversation (an agent
retrying after a person approved a held call) gets the same call again. From the first injection call on,
each step also states the user task's answer: the model has done the user's task and now follows the
injection, so an agent loop that stops at a refused injection call still ends with the answer given. After
the last call it answers with the text alone.

`HELD` finds the approval requests named in the gateway's answer. No AgentDojo import here: the stub upstream
(`stub_model.py`) runs in the project's venv, and the unit test drives this on a made-up task.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DONE = "Done."  # the answer when a task's ground truth gives none (a null content would make AgentDojo retry)
# The gateway's note on a held call names its approval request (`interlock.agents.hook.refusal_note`).
HELD = re.compile(r"awaits approval ([A-Za-z0-9_\-]+)")


@dataclass(frozen=True, slots=True)
class Call:
    """One scripted tool call."""

    function: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Script:
    """One case: the user task's calls, the injection task's calls, and the user task's answer."""

    user: tuple[Call, ...] = ()
    injection: tuple[Call, ...] = ()
    answer: str = DONE
    case: str = ""

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Script:
        """A script from its JSON form (as `to_json` writes it); raises ValueError on a malformed one."""

        def calls(items: object) -> tuple[Call, ...]:
            if not isinstance(items, list):
                raise ValueError("'user' and 'injection' must be lists of {function, args}")
            out = []
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("function"), str):
                    raise ValueError("each call needs a 'function' name")
                args = item.get("args", {})
                if not isinstance(args, dict):
                    raise ValueError("a call's 'args' must be an object")
                out.append(Call(item["function"], args))
            return tuple(out)

        answer = body.get("answer") or DONE
        if not isinstance(answer, str):
            raise ValueError("'answer' must be a string")
        return cls(calls(body.get("user", [])), calls(body.get("injection", [])), answer, str(body.get("case", "")))

    def to_json(self) -> dict[str, Any]:
        """The JSON form the harness sends the stub."""
        return {
            "case": self.case,
            "user": [{"function": c.function, "args": c.args} for c in self.user],
            "injection": [{"function": c.function, "args": c.args} for c in self.injection],
            "answer": self.answer,
        }


@dataclass(slots=True)
class Step:
    """The assistant message of one step."""

    content: str
    calls: list[tuple[str, Call]] = field(default_factory=list)  # (call id, call)

    def message(self) -> dict[str, Any]:
        """As an OpenAI chat `message`."""
        out: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.calls:
            out["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": c.function, "arguments": json.dumps(c.args, ensure_ascii=False)},
                }
                for call_id, c in self.calls
            ]
        return out

    @property
    def finish_reason(self) -> str:
        """`tool_calls` when the step makes a call, else `stop`."""
        return "tool_calls" if self.calls else "stop"


def step_of(messages: Sequence[Mapping[str, Any]]) -> int:
    """The step a conversation is at: how many assistant turns it already holds."""
    return sum(1 for m in messages if m.get("role") == "assistant")


def next_step(script: Script, messages: Sequence[Mapping[str, Any]]) -> Step:
    """What the always-hijacked model answers to `messages` (see the module docstring)."""
    k = step_of(messages)
    calls = (*script.user, *script.injection)
    if k >= len(calls):
        return Step(script.answer)
    content = script.answer if k >= len(script.user) else ""
    return Step(content, [(f"call_{k}", calls[k])])
