"""`RequestContext`: the facts about one request that every stage and hook may read."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from interlock.auth.keys import Principal
from interlock.store.records import new_request_id
from interlock.translate.openai_relay import RelayChunk
from interlock.types import ChatChunk, Usage, reasoning_text

if TYPE_CHECKING:
    from interlock.governance.admission import Admission
    from interlock.routing.deployments import Deployment, ModelRoute
    from interlock.settings import VariantSettings


@dataclass(slots=True)
class StreamTally:
    """What a streamed answer has produced: the text for counting tokens, usage, the finish reason."""

    opening: tuple[str, int, str] | None = None  # the first chunk's id, `created` and model
    pieces: list[str] = field(default_factory=list)  # answer text and tool-call arguments
    thoughts: list[str] = field(default_factory=list)  # reasoning text: billed like output without usage
    reported: Usage | None = None
    finish: str | None = None
    tool_calls: bool = False

    def observe(self, chunk: ChatChunk) -> None:
        """Fold one chunk in."""
        if self.opening is None:
            self.opening = (chunk.id, chunk.created, chunk.model)
        if chunk.usage is not None:
            self.reported = chunk.usage
        for choice in chunk.choices:
            self.finish = choice.finish_reason or self.finish
            delta = choice.delta
            if delta.content:
                self.pieces.append(delta.content)
            if delta.model_extra:
                thought = reasoning_text(delta.model_extra)
                if thought:
                    self.thoughts.append(thought)
            for call in delta.tool_calls or ():
                self.tool_calls = True
                self.pieces.append((call.function or {}).get("arguments", ""))

    def observe_relay(self, chunk: RelayChunk) -> None:
        """Fold one relayed chunk in (the same facts as `observe` finds in a `ChatChunk`)."""
        if self.opening is None:
            data = chunk.data
            self.opening = (data["id"], data["created"], data["model"])
        if chunk.usage is not None:
            self.reported = chunk.usage
        self.finish = chunk.finish or self.finish
        if chunk.content:
            self.pieces.append(chunk.content)
        if chunk.reasoning:
            self.thoughts.append(chunk.reasoning)
        if chunk.arguments:
            self.tool_calls = True
            self.pieces.extend(chunk.arguments)

    def head(self) -> ChatChunk | None:
        """A chunk with the first chunk's id, `created` and model and nothing else (None before the first)."""
        if self.opening is None:
            return None
        id_, created, model = self.opening
        return ChatChunk(id=id_, created=created, model=model)

    def generated(self) -> str:
        """Everything generated so far, reasoning first."""
        return "".join(self.thoughts) + "".join(self.pieces)


@dataclass(slots=True)
class RequestContext:
    """Per-request facts every stage may read (the gateway's side of `plugins.HookContext`)."""

    principal: Principal
    endpoint: str  # chat, messages, embeddings, responses, completions
    operation: str = ""  # "POST /v1/chat/completions", for audit entries
    request_id: str = field(default_factory=new_request_id)
    ts: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    alias: str = ""
    run_id: str = ""  # the caller's `x-interlock-run-id`: an agent's run, for outcomes and ROI
    variant: str = ""  # the variant of the alias that answers (`routing.variants`); "" when it has none
    shadow_of: str = ""  # a shadow request: the id of the request it shadows
    shadows: list[VariantSettings] = field(default_factory=list)  # shadow variants to run once this one succeeds
    user_agent: str = ""  # the caller's User-Agent (at most 200 characters), for shadow-agent discovery
    stream: bool = False
    restricted: bool = False  # data residency: only local/sovereign deployments
    cacheable: bool = True  # False: never store this answer in the response cache
    route: ModelRoute | None = None  # the route that will serve the request (after the router's pick)
    plan: list[Deployment] = field(default_factory=list)  # deployments it may go to, in order
    reach: list[Deployment] = field(default_factory=list)  # every deployment a router alias may pick (budget)
    deployment: Deployment | None = None  # the one that answered (or was tried last)
    attempts: int = 0
    cache: str = ""  # "hit" or "miss" when the response cache applies
    admission: Admission | None = None
    ttft_ms: float | None = None
    tally: StreamTally | None = None  # what a stream has produced so far
    headers: dict[str, str] = field(default_factory=dict)  # added to the response (rate-limit state, route)
    notes: dict[str, object] = field(default_factory=dict)  # per-request scratch space for hooks

    def response_headers(self) -> dict[str, str]:
        """The `x-request-id` and `x-interlock-*` headers of this request's answer (or error)."""
        headers = {"x-request-id": self.request_id, **self.headers}
        if self.cache:
            headers["x-interlock-cache"] = self.cache
        dep = self.deployment
        if dep is not None:
            headers["x-interlock-model"] = dep.alias
            headers["x-interlock-deployment"] = dep.name
            headers["x-interlock-provider"] = dep.provider.kind
            headers["x-interlock-attempts"] = str(self.attempts)
        return headers
