"""Chat chunks as the Responses API's stream events, in the order OpenAI sends them.

`response.created`, `response.in_progress`; per output item `response.output_item.added`, then for a
message `response.content_part.added`, `response.output_text.delta`…, `response.output_text.done`,
`response.content_part.done`, for a reasoning item (the model's `reasoning_content`) the same with
`response.reasoning_text.*` (or, when the client asked for a summary, `response.reasoning_summary_part.*`
and `response.reasoning_summary_text.*`), or for a function call `response.function_call_arguments.delta`…,
`response.function_call_arguments.done`, or for a custom tool's call one `response.custom_tool_call_input.delta`
with the whole input and `response.custom_tool_call_input.done` (the input is a string inside the chat
call's JSON arguments, so it is sent once the call is complete), or for a tool search's call nothing (its
`arguments` are whole in the next event); then `response.output_item.done`; last
`response.completed` (or `response.incomplete`) carrying the whole response with its usage. A failure after
the first event ends the stream with `response.failed`, which the SDK hands to the caller as the last event.
"""

from __future__ import annotations

from typing import Any

from interlock.errors import GatewayError
from interlock.translate.responses_output import call_item, finish_status, message_item, reasoning_item, usage_of
from interlock.translate.responses_tools import ToolNames, custom_input, search_arguments
from interlock.types import ChatChunk, Usage, reasoning_text

Event = tuple[str, dict[str, Any]]


class ResponsesStreamWriter:
    """Turns one stream of chat chunks into Responses events; `response` is the finished object."""

    def __init__(self, base: dict[str, Any], names: ToolNames | None = None, summary: bool = False) -> None:
        self._base = base
        self._summary = summary  # reasoning streams as `reasoning_summary_text` (the client asked for a summary)
        self._names = names or ToolNames()  # a namespaced function's chat name -> its name and namespace
        self._suffix = str(base["id"]).removeprefix("resp_")
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._item: dict[str, Any] | None = None  # the open output item
        self._pieces: list[str] = []  # the open item's text or arguments
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> its item
        self._raw: dict[str, str] = {}  # a closed custom or tool-search call's id -> its chat arguments so far
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
        at = {"item_id": item["id"], "output_index": self._index()}
        events: list[Event] = []
        if item["type"] == "message":
            done = message_item(item["id"], text)
            events.append(self._event("response.output_text.done", **at, content_index=0, text=text, logprobs=[]))
            events.append(self._event("response.content_part.done", **at, content_index=0, part=done["content"][0]))
        elif item["type"] == "reasoning" and self._summary:
            done = reasoning_item(item["id"], text, summary=True)
            events.append(self._event("response.reasoning_summary_text.done", **at, summary_index=0, text=text))
            part = done["summary"][0]
            events.append(self._event("response.reasoning_summary_part.done", **at, summary_index=0, part=part))
        elif item["type"] == "reasoning":
            done = reasoning_item(item["id"], text)
            events.append(self._event("response.reasoning_text.done", **at, content_index=0, text=text))
            events.append(self._event("response.content_part.done", **at, content_index=0, part=done["content"][0]))
        elif item["type"] == "custom_tool_call":  # the input is a string inside the JSON arguments: sent whole
            self._raw[item["id"]] = text
            done = {**item, "input": custom_input(text), "status": "completed"}
            events.append(self._event("response.custom_tool_call_input.delta", **at, delta=done["input"]))
            events.append(self._event("response.custom_tool_call_input.done", **at, input=done["input"]))
        elif item["type"] == "tool_search_call":  # its arguments are a JSON value: no delta events
            self._raw[item["id"]] = text
            done = {**item, "arguments": search_arguments(text), "status": "completed"}
        else:
            done = {**item, "arguments": text, "status": "completed"}
            events.append(self._event("response.function_call_arguments.done", **at, name=item["name"], arguments=text))
        item.update(done)  # the same dict stays in `_calls`, so late arguments still reach the final object
        events.append(self._event("response.output_item.done", output_index=at["output_index"], item=dict(item)))
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
            thought = reasoning_text(delta.model_extra)
            if thought:
                events += self._text("reasoning", thought)
            if delta.content:
                events += self._text("message", delta.content)
            for call in delta.tool_calls or []:
                function = call.function or {}
                found = self._calls.get(call.index)
                if found is None:
                    found = call_item(
                        f"{self._suffix}_{self._index()}",
                        call.id or f"call_{self._suffix}_{call.index}",
                        function.get("name", ""),
                        "",
                        status="in_progress",
                        names=self._names,
                    )
                    self._calls[call.index] = found
                    events += self._open(found)
                args = function.get("arguments")
                whole = found["type"] != "function_call"  # a custom tool's input, a search's arguments
                if args and found is self._item and whole:
                    self._pieces.append(args)  # no delta until the call is whole (`_close`)
                elif args and found is self._item:
                    self._pieces.append(args)
                    events.append(
                        self._event(
                            "response.function_call_arguments.delta",
                            item_id=found["id"],
                            output_index=self._index(),
                            delta=args,
                        )
                    )
                elif args and whole:  # resumed after another began (below)
                    self._raw[found["id"]] += args
                    raw = self._raw[found["id"]]
                    if found["type"] == "custom_tool_call":
                        found["input"] = custom_input(raw)
                    else:
                        found["arguments"] = search_arguments(raw)
                elif args:  # a call resumed after another began: its arguments still reach the final object
                    found["arguments"] += args
            if choice.finish_reason:
                self._finish = choice.finish_reason
        return events

    def _text(self, kind: str, text: str) -> list[Event]:
        """A piece of a message's text or of a reasoning item's, opening that item (and its one content part)
        when another is open."""
        events: list[Event] = []
        message = kind == "message"
        if self._item is None or self._item["type"] != kind:
            if message:
                item = message_item(f"msg_{self._suffix}_{self._index()}", "", status="in_progress")
                item["content"] = []
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            else:
                item = reasoning_item(f"rs_{self._suffix}_{self._index()}", "", status="in_progress")
                part = {"type": "reasoning_text", "text": ""}
            events += self._open(item)
            at = {"item_id": item["id"], "output_index": self._index()}
            if message or not self._summary:
                events.append(self._event("response.content_part.added", **at, content_index=0, part=part))
            else:
                summary_part = {"type": "summary_text", "text": ""}
                events.append(
                    self._event("response.reasoning_summary_part.added", **at, summary_index=0, part=summary_part)
                )
        self._pieces.append(text)
        assert self._item is not None
        at = {"item_id": self._item["id"], "output_index": self._index()}
        if message:
            events.append(self._event("response.output_text.delta", **at, content_index=0, delta=text, logprobs=[]))
        elif self._summary:
            events.append(self._event("response.reasoning_summary_text.delta", **at, summary_index=0, delta=text))
        else:
            events.append(self._event("response.reasoning_text.delta", **at, content_index=0, delta=text))
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
