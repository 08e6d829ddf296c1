"""One streamed answer through the guardrails: its text held back and scanned, its tool calls held whole.

Role, finish and usage chunks with nothing held pass as they came. A blocked entity ends the stream
(`CutStream`): what was released before it is delivered, nothing after it ever is.
"""

from __future__ import annotations

from collections.abc import Callable

from interlock.guardrails.findings import Finding
from interlock.guardrails.transform import HoldBack
from interlock.plugins.hooks import CutStream, Denied
from interlock.types import ChatChunk, ChunkChoice, Delta


class StreamScan:
    """The hold-back of one streamed answer and the tool calls it holds until the finish.

    `arguments(text)` scans and restores a held call's whole arguments (raising `CutStream` when the
    policy blocks them); `count(text)` records what the hold-back found; `blocked(finding)` is the
    error a blocked entity ends the stream with.
    """

    def __init__(
        self,
        text: HoldBack,
        arguments: Callable[[str], str],
        count: Callable[[HoldBack], None],
        blocked: Callable[[Finding], Denied],
    ) -> None:
        self.text = text
        self._arguments = arguments
        self._count = count
        self._blocked = blocked
        self._template: ChatChunk | None = None  # the first chunk: ids for text released at the end
        self._calls: dict[int, ChatChunk] = {}  # streamed tool calls, held whole
        self._args: dict[int, list[str]] = {}

    def batch(self, batch: list[ChatChunk], *, last: bool) -> list[ChatChunk]:
        """One batch of `ChatChunk`s: the text that may go now, calls at the finish; `CutStream` at a block."""
        text = self.text
        if self._template is None and batch:
            self._template = batch[0]
        out: list[ChatChunk] = []
        # Chunk by chunk, never merged: a later hook (the budget backstop) cuts between chunks, and a
        # client sees the upstream's pace. (Scanning a read's chunks as one text was measured: the
        # gain came from the stub sending a whole answer in one read, which real upstreams do not.)
        for chunk in batch:
            out.extend(self._chunk(chunk))
            self._check(out)
        if last:
            self._end(out, batch[-1] if batch else self._template)
        self._count(text)
        return out

    def _chunk(self, chunk: ChatChunk) -> list[ChatChunk]:
        """One chunk through the hold-back: its text delayed, its tool calls held until the finish."""
        if not chunk.choices:
            return [chunk]
        choice = chunk.choices[0]
        delta = choice.delta
        for call in delta.tool_calls or ():
            if call.index not in self._calls:
                self._calls[call.index] = _only(chunk, delta.model_copy(update={"content": None, "tool_calls": [call]}))
            self._args.setdefault(call.index, []).append((call.function or {}).get("arguments", ""))
        finishing = choice.finish_reason is not None
        out = _text(chunk, self.text.feed(delta.content or "", final=finishing))
        if self.text.blocked is not None:
            return out
        if finishing:
            out.extend(self._held_calls())
        if delta.role is not None or finishing or chunk.usage is not None or delta.model_extra:
            # the chunk's other parts pass on now: role, finish reason, usage, reasoning (not scanned)
            content = "" if delta.role is not None and not out else None
            if delta.content == content and not delta.tool_calls and len(chunk.choices) == 1:
                out.append(chunk)  # nothing of it held (a role or finish chunk without text): as it came
                return out
            rest = delta.model_copy(update={"content": content, "tool_calls": None})
            out.append(chunk.model_copy(update={"choices": [choice.model_copy(update={"delta": rest})]}))
        return out

    def _held_calls(self) -> list[ChatChunk]:
        """The held tool calls, each whole in one chunk, scanned and restored."""
        out = []
        for index in sorted(self._calls):
            held = self._calls[index]
            args = self._arguments("".join(self._args[index]))
            choice = held.choices[0]
            call = (choice.delta.tool_calls or [])[0]
            fn = {**(call.function or {}), "arguments": args}
            delta = choice.delta.model_copy(update={"tool_calls": [call.model_copy(update={"function": fn})]})
            out.append(_only(held, delta))
        self._calls.clear()
        self._args.clear()
        return out

    def _end(self, out: list[ChatChunk], template: ChatChunk | None) -> None:
        """A stream that ended without a finish reason: release what is held, before a trailing usage chunk."""
        if template is None or not (self.text.pending or self._calls):
            return
        rest = self.text.feed("", final=True)
        if self.text.blocked is not None:
            self._count(self.text)
            raise CutStream(self._blocked(self.text.blocked), keep=[*out, *_text(template, rest)])
        tail = [*_text(template, rest), *self._held_calls()]
        at = len(out)
        while at > 0 and not out[at - 1].choices:
            at -= 1
        out[at:at] = tail

    def _check(self, kept: list[ChatChunk]) -> None:
        if self.text.blocked is not None:
            self._count(self.text)
            raise CutStream(self._blocked(self.text.blocked), keep=kept)


def _text(chunk: ChatChunk, text: str) -> list[ChatChunk]:
    """A chunk like `chunk` carrying only `text` (none when there is no text)."""
    if not text:
        return []
    return [_only(chunk, Delta(content=text))]


def _only(chunk: ChatChunk, delta: Delta) -> ChatChunk:
    """A copy of `chunk` with one choice carrying `delta`, no finish reason and no usage."""
    choice = ChunkChoice(index=chunk.choices[0].index if chunk.choices else 0, delta=delta)
    return chunk.model_copy(update={"choices": [choice], "usage": None})
