"""The request path's seam: hooks that every model request runs through, in one fixed order.

A hook is a class with up to four methods, each optional (the base class's are no-ops, and the
gateway calls only the ones a hook overrides, from lists built once at startup):

- `before(ctx, request) -> request`: runs before any model is called. Return the request, or a
  rewritten copy (redaction); raise `Denied` (or any `GatewayError`) to refuse it; raise `Answered`
  to answer without a model (a cache hit, a canned refusal). Hooks of phase `"input"` (content
  checks) run before the route is chosen and before the residency rule, so they may restrict the
  request (`ctx.restricted = True`); hooks of phase `"policy"` run after it, in registration order.
- `on_batch(ctx, batch) -> batch`: each batch of a streamed answer, before the client gets it.
  Return it, a changed copy, or `[]` to hold it back; raise `CutStream` to end the stream early
  with an error after delivering part of the batch.
- `after(ctx, response) -> response`: a complete (not streamed) answer, before the client gets it.
- `finish(ctx, outcome)`: once per authenticated request, after it has ended however it ended
  (success, refusal, upstream failure, client gone). Observe only; it must not block: schedule any
  I/O yourself. An exception here is logged and never changes what the client got.

Hooks see the request through `HookContext` (what the gateway knows of it) and never import the
gateway, so a capability package (guardrails, agents, flywheel) implements this interface alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, Protocol, TypeVar

from interlock.errors import Forbidden, GatewayError
from interlock.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)

ModelRequest = ChatRequest | EmbeddingRequest
ModelResponse = ChatResponse | EmbeddingResponse
Phase = Literal["input", "policy"]
METHODS = ("before", "on_batch", "after", "finish")


class Caller(Protocol):
    """Who sent the request (a virtual key, or the admin)."""

    @property
    def key_id(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def is_admin(self) -> bool: ...
    @property
    def team_id(self) -> str | None: ...
    @property
    def org_id(self) -> str | None: ...
    @property
    def agent_id(self) -> str | None:
        """The agent behind the key (None: not an agent)."""
        ...

    @property
    def owner_id(self) -> str | None:
        """The person who answers for the agent."""
        ...


class HookContext(Protocol):
    """What a hook may read (and the few things it may set) about the request in flight."""

    @property
    def request_id(self) -> str: ...
    @property
    def endpoint(self) -> str:
        """`chat`, `messages`, `embeddings`, `responses` or `completions`."""
        ...

    @property
    def principal(self) -> Caller: ...
    @property
    def alias(self) -> str:
        """The model alias asked for (after routing: the alias that will serve it)."""
        ...

    @property
    def stream(self) -> bool: ...
    @property
    def variant(self) -> str:
        """The variant of the alias that answers ("" when the alias has none)."""
        ...

    @property
    def user_agent(self) -> str:
        """The caller's User-Agent header (at most 200 characters; "" when absent)."""
        ...

    run_id: str
    """The agent run this request is a step of (`x-interlock-run-id`; the agents' run hook derives one)."""
    restricted: bool
    """Data residency: only local or sovereign deployments may serve this request."""
    cacheable: bool
    """False: the answer must not be stored in the response cache (it holds restored sensitive values)."""
    headers: dict[str, str]
    """Added to the response."""
    notes: dict[str, object]
    """Per-request scratch space for hooks, keyed by hook name."""


@dataclass(slots=True)
class Outcome:
    """How a request ended: what `finish` hooks see, and what the ledger row records."""

    status: int
    usage: Usage
    usage_source: str
    cost_micros: int
    error: GatewayError | None = None
    deployment: str = ""
    provider: str = ""
    attempts: int = 0
    cached: bool = False
    ttft_ms: float | None = None
    latency_ms: float = 0.0

    @property
    def attempted(self) -> bool:
        """Whether a model (or the cache) was reached."""
        return self.attempts > 0 or self.cached


class Denied(Forbidden):
    """A hook's refusal. `code` is the typed reason: it is in the error JSON and the audit entry."""

    def __init__(self, message: str, *, code: str, status: int = 403, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code, headers=headers)
        self.status = status
        if status == 400:
            self.type = "invalid_request_error"


class Answered(Exception):
    """Raised by `before` to answer the request without calling a model."""

    def __init__(self, response: ModelResponse, *, source: str) -> None:
        super().__init__(source)
        self.response = response
        self.source = source


class CutStream(Exception):
    """Raised by `on_batch` to deliver `keep` and then end the stream with `error`."""

    def __init__(self, error: GatewayError, keep: list[ChatChunk] | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.keep = keep or []


C = TypeVar("C", bound=HookContext, contravariant=True)


class Hook(Generic[C]):
    """Base class of a request-path hook; override the methods you need (see the module docstring)."""

    name: ClassVar[str] = "hook"
    phase: ClassVar[Phase] = "policy"
    endpoints: ClassVar[frozenset[str] | None] = None
    """The endpoints this hook applies to (None: every model endpoint)."""

    async def before(self, ctx: C, request: ModelRequest) -> ModelRequest:
        """Check or rewrite a request before a model is called."""
        return request

    async def on_batch(self, ctx: C, batch: list[ChatChunk]) -> list[ChatChunk]:
        """Check or change a batch of a streamed answer."""
        return batch

    def watches_stream(self, ctx: C) -> bool:
        """Whether `on_batch` has work on this request's stream (default: yes, whenever it is overridden).

        A hook that returns False for a request is not called for its chunks, and the gateway may then
        relay an OpenAI upstream's chunks as they are (`gateway.Gateway._relayable`).
        """
        return True

    async def after(self, ctx: C, response: ModelResponse) -> ModelResponse:
        """Check or change a complete answer."""
        return response

    def finish(self, ctx: C, outcome: Outcome) -> None:
        """Observe how the request ended."""

    def overrides(self, method: str) -> bool:
        """Whether this hook implements `method` (the gateway calls only those)."""
        return getattr(type(self), method) is not getattr(Hook, method)

    def applies_to(self, endpoint: str) -> bool:
        """Whether this hook runs on `endpoint`."""
        return self.endpoints is None or endpoint in self.endpoints
