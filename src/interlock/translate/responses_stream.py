"""Chat chunks as the Responses API's stream events, in the order OpenAI sends them.

`response.created`, `response.in_progress`; per output item `response.output_item.added`, then for a
message `response.content_part.added`, `response.output_text.delta`…, `response.output_text.done`,
`response.content_part.done`, or for a function call `response.function_call_arguments.delta`…,
`response.function_call_arguments.done`; then `response.output_item.done`; last `response.completed`
(or `response.incomplete`) carrying the whole response with its usage. A failure after the first event
ends the stream with `response.failed`, which the SDK hands to the caller as the last event.
"""

from __future__ import annotations

from typing import Any

from interlock.errors import GatewayError
from interlock.translate.responses_output import call_item, finish_status, message_item, usage_of
from interlock.types import ChatChunk, Usage

Event = tuple[str, dict[str, Any]]


class ResponsesStreamWriter:
    """Turns one stream of chat chunks into Responses events; `response` is the finished object."""

    def __init__(self, base: dict[str, Any]) -> None:
        self._base = base
        self._suffix = str(base["id"]).removeprefix("resp_")
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._item: dict[str, Any] | None = None  # the open output item
        self._pieces: list[str] = []  # the open item's text or arguments
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> its item
        self._finish: str | None = None
        self._usage: Usage | None = None
        self.response: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> Event:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return kind, data

    def _snapshot(self, status: str) -> dict[str, Any]:
        return {**self._base, "status": status, "output": list(self._output)}

    def start(self) -> list[Event]:
        """`response.created` and `response.in_progress`."""
        return [
            self._event("response.created", response=self._snapshot("in_progress")),
            self._event("response.in_progress", response=self._snapshot("in_progress")),
        ]

    def _index(self) -> int:
        return len(self._output)

    def _close(self) -> list[Event]:
        item = self._item
        if item is None:
            return []
        self._item, text = None, "".join(self._pieces)
        self._pieces = []
        at = self._index()
        events: list[Event] = []
        if item["type"] == "message":
            done = message_item(item["id"], text)
            part = done["content"][0]
            events.append(
                self._event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=at,
                    content_index=0,
                    text=text,
                    logprobs=[],
                )
            )
            events.append(
                self._event(
                    "response.content_part.done", item_id=item["id"], output_index=at, content_index=0, part=part
                )
            )
        else:
            done = call_item(item["id"], item["call_id"], item["name"], text)
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=at,
                    name=item["name"],
                    arguments=text,
                )
            )
        item.update(done)  # the same dict stays in `_calls`, so late arguments still reach the final object
        events.append(self._event("response.output_item.done", output_index=at, item=dict(item)))
        self._output.append(item)
        return events

    def _open(self, item: dict[str, Any]) -> list[Event]:
        events = self._close()
        self._item = item
        events.append(self._event("response.output_item.added", output_index=self._index(), item=dict(item)))
        return events

    def feed(self, chunk: ChatChunk) -> list[Event]:
        """The events for one chunk."""
        events: list[Event] = []
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                if self._item is None or self._item["type"] != "message":
                    item = message_item(f"msg_{self._suffix}_{self._index()}", "", status="in_progress")
                    item["content"] = []
                    events += self._open(item)
                    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                    events.append(
                        self._event(
                            "response.content_part.added",
                            item_id=item["id"],
                            output_index=self._index(),
                            content_index=0,
                            part=part,
                        )
                    )
                self._pieces.append(delta.content)
                assert self._item is not None
                events.append(
                    self._event(
                        "response.output_text.delta",
                        item_id=self._item["id"],
                        output_index=self._index(),
                        content_index=0,
                        delta=delta.content,
                        logprobs=[],
                    )
                )
            for call in delta.tool_calls or []:
                function = call.function or {}
                found = self._calls.get(call.index)
                if found is None:
                    found = call_item(
                        f"fc_{self._suffix}_{self._index()}",
                        call.id or f"call_{self._suffix}_{call.index}",
                        function.get("name", ""),
                        "",
                        status="in_progress",
                    )
                    self._calls[call.index] = found
                    events += self._open(found)
                args = function.get("arguments")
                if args and found is self._item:
                    self._pieces.append(args)
                    events.append(
                        self._event(
                            "response.function_call_arguments.delta",
                            item_id=found["id"],
                            output_index=self._index(),
                            delta=args,
                        )
                    )
                elif args:  # a call resumed after another began: its arguments still reach the final object
                    found["arguments"] += args
            if choice.finish_reason:
                self._finish = choice.finish_reason
        return events

    def finish(self) -> list[Event]:
        """Close the open item, then `response.completed` (or `response.incomplete`) with the usage."""
        events = self._close()
        status, incomplete = finish_status(self._finish)
        self.response = {
            **self._snapshot(status),
            "incomplete_details": incomplete,
            "usage": usage_of(self._usage),
        }
        kind = "response.completed" if status == "completed" else "response.incomplete"
        events.append(self._event(kind, response=self.response))
        return events

    def failed(self, exc: GatewayError) -> Event:
        """`response.failed`, carrying the error."""
        code = "rate_limit_exceeded" if exc.status == 429 else "server_error"
        error = {"code": code, "message": exc.message}
        return self._event("response.failed", response={**self._snapshot("failed"), "error": error})
