"""The guardrail hook on streamed answers, chunk by chunk: tool calls held whole and restored, text held
back and cut, and an answer that ends without a finish reason still flushed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest

from interlock.guardrails.findings import Finding
from interlock.guardrails.hook import Guardrails
from interlock.guardrails.policy import Effective, PolicyBook, PolicyRules
from interlock.plugins.hooks import CutStream
from interlock.types import Batch, ChatChunk, ChatRequest, ChunkChoice, Delta, ToolCallDelta

EMAIL = re.compile(r"[\w.]+@[\w]+\.[a-z]{2,}")
CARD = re.compile(r"\b\d{4}(?: \d{4}){3}\b")


class _Regex:
    name = "regex"
    entities = frozenset({"EMAIL_ADDRESS", "CREDIT_CARD"})

    def could_match(self, text: str) -> bool:
        return "@" in text or any(c.isdigit() for c in text)

    def scan(self, text: str) -> list[Finding]:
        found = [Finding("EMAIL_ADDRESS", m.start(), m.end(), 1.0, "t") for m in EMAIL.finditer(text)]
        found += [Finding("CREDIT_CARD", m.start(), m.end(), 1.0, "t") for m in CARD.finditer(text)]
        return sorted(found, key=lambda f: f.start)


class _Scanner:
    detectors = (_Regex(),)
    could_match = staticmethod(detectors[0].could_match)  # as `Scanner` combines its detectors' prefilters

    def scan(self, text: str) -> list[Finding]:
        return self.detectors[0].scan(text)


class _Scanners:
    def content(self, policy: Effective) -> _Scanner:
        return _Scanner()

    def output(self, policy: Effective) -> _Scanner:
        return _Scanner()

    def untrusted(self) -> None:
        return None


@dataclass
class _Principal:
    key_id: str | None = "k1"
    name: str = "test"
    agent_id: str | None = None
    owner_id: str | None = None
    is_admin: bool = False
    team_id: str | None = None
    org_id: str | None = None


@dataclass
class _Ctx:
    request_id: str = "req_1"
    endpoint: str = "chat"
    principal: _Principal = field(default_factory=_Principal)
    alias: str = "m"
    stream: bool = True
    restricted: bool = False
    cacheable: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)


def _hook(output: dict[str, str]) -> Guardrails:
    rules = PolicyRules.model_validate({"input": {"EMAIL_ADDRESS": "pseudonymise"}, "output": output})
    return Guardrails(PolicyBook(rules), _Scanners(), hold_back_chars=32)


def _chunk(delta: Delta, finish: str | None = None) -> ChatChunk:
    return ChatChunk(id="c", created=0, model="m", choices=[ChunkChoice(delta=delta, finish_reason=finish)])


async def _open(hook: Guardrails, ctx: _Ctx, text: str) -> None:
    await hook.before(ctx, ChatRequest(model="m", messages=[{"role": "user", "content": text}]))  # type: ignore[arg-type, list-item]


def _text(batches: list[list[ChatChunk]]) -> str:
    return "".join(c.choices[0].delta.content or "" for b in batches for c in b if c.choices)


async def test_tool_call_arguments_are_held_whole_and_restored() -> None:
    hook, ctx = _hook({"CREDIT_CARD": "block"}), _Ctx()
    await _open(hook, ctx, 'Mail "ann"@example.com — no: mail ann@example.com please')
    first = ToolCallDelta(
        index=0, id="call_1", type="function", function={"name": "send", "arguments": '{"to": "<EMAIL_'}
    )
    rest = ToolCallDelta(index=0, function={"arguments": 'ADDRESS_1>", "body": "hi"}'})
    out1 = await hook.on_batch(ctx, [_chunk(Delta(role="assistant", content="")), _chunk(Delta(tool_calls=[first]))])
    assert all(not c.choices[0].delta.tool_calls for c in out1)  # nothing of the call yet
    out2 = await hook.on_batch(ctx, Batch.final([_chunk(Delta(tool_calls=[rest])), _chunk(Delta(), "tool_calls")]))
    calls = [t for c in out2 for t in c.choices[0].delta.tool_calls or ()]
    assert len(calls) == 1 and calls[0].id == "call_1" and calls[0].function is not None
    assert calls[0].function["name"] == "send"
    assert json.loads(calls[0].function["arguments"]) == {"to": "ann@example.com", "body": "hi"}
    assert out2[-1].choices[0].finish_reason == "tool_calls"


async def test_a_blocked_entity_cuts_the_stream_before_any_of_it() -> None:
    hook, ctx = _hook({"CREDIT_CARD": "block"}), _Ctx()
    await _open(hook, ctx, "hello")
    sent: list[list[ChatChunk]] = []
    words = ["Sure,", "the", "card", "on", "file", "is", "4111", "1111", "1111", "1111", "and", "it", "expires", "soon"]
    with pytest.raises(CutStream) as cut:
        for i, w in enumerate(words):
            sent.append(await hook.on_batch(ctx, [_chunk(Delta(content=w if i == 0 else " " + w))]))
        await hook.on_batch(ctx, Batch.final([_chunk(Delta(), "stop")]))
    sent.append(cut.value.keep)
    assert cut.value.error.code == "guardrail_blocked"
    assert _text(sent) == "Sure, the card on file is "


async def test_a_stream_without_a_finish_reason_is_still_flushed_and_restored() -> None:
    hook, ctx = _hook({"CREDIT_CARD": "redact"}), _Ctx()
    await _open(hook, ctx, "write to ann@example.com")
    a = await hook.on_batch(ctx, [_chunk(Delta(content="Writing to <EMAIL_ADD"))])
    b = await hook.on_batch(
        ctx, Batch.final([_chunk(Delta(content="RESS_1> now")), ChatChunk(id="c", created=0, model="m")])
    )
    assert _text([a, b]) == "Writing to ann@example.com now"
    assert isinstance(b, Batch) and b.last and not b[-1].choices  # the usage chunk stays last


async def test_reasoning_passes_at_once_while_the_answer_is_held() -> None:
    hook, ctx = _hook({"CREDIT_CARD": "redact"}), _Ctx()
    await _open(hook, ctx, "hello")
    thought = Delta.model_validate({"reasoning_content": "The user wants"})
    out = await hook.on_batch(ctx, [_chunk(thought), _chunk(Delta(content="Hel"))])
    assert [c.choices[0].delta.model_extra for c in out] == [{"reasoning_content": "The user wants"}]
    rest = await hook.on_batch(ctx, Batch.final([_chunk(Delta(content="lo")), _chunk(Delta(), "stop")]))
    assert _text([out, rest]) == "Hello"


async def test_text_chunks_that_arrive_together_are_restored_and_redacted_across_chunks() -> None:
    hook, ctx = _hook({"CREDIT_CARD": "redact"}), _Ctx()
    await _open(hook, ctx, "write to ann@example.com")
    pieces = ["Your card ", "4111 1111", " 1111 1111", " was sent to <EMAIL", "_ADDRESS_1> today", "."]
    batch = [_chunk(Delta(role="assistant", content="")), *(_chunk(Delta(content=p)) for p in pieces)]
    out = await hook.on_batch(ctx, Batch.final([*batch, _chunk(Delta(), "stop")]))
    assert _text([out]) == "Your card <CREDIT_CARD> was sent to ann@example.com today."
    assert out[0].choices[0].delta.role == "assistant" and out[-1].choices[0].finish_reason == "stop"


async def test_a_blocked_entity_split_across_chunks_of_one_batch_is_cut() -> None:
    hook, ctx = _hook({"CREDIT_CARD": "block"}), _Ctx()
    await _open(hook, ctx, "hello")
    pieces = ["Sure, the card ", "is 4111 11", "11 1111 1111", " and more"]
    with pytest.raises(CutStream) as cut:
        await hook.on_batch(ctx, Batch.final([*(_chunk(Delta(content=p)) for p in pieces), _chunk(Delta(), "stop")]))
    assert cut.value.error.code == "guardrail_blocked" and _text([cut.value.keep]) == "Sure, the card is "
