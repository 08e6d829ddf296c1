"""What the observability hooks read from a request in flight: `HookContext`, plus a few gateway facts.

The gateway's `RequestContext` has all of these; declaring them here as read-only properties keeps
this package below `gateway/` (the hooks never import it) while staying typed.
"""

from __future__ import annotations

from typing import Protocol

from interlock.plugins.hooks import HookContext
from interlock.routing.deployments import Deployment, ModelRoute


class Tally(Protocol):
    """What a streamed answer produced so far (the gateway's `StreamTally`)."""

    @property
    def finish(self) -> str | None: ...


class ObservedContext(HookContext, Protocol):
    """A request as the metrics and tracing hooks see it."""

    @property
    def route(self) -> ModelRoute | None:
        """The route that served the request (a learned router's pick, not the router alias)."""
        ...

    @property
    def deployment(self) -> Deployment | None:
        """The deployment that answered (or was tried last)."""
        ...

    @property
    def cache(self) -> str:
        """`hit` or `miss` when the response cache applies, else empty."""
        ...

    @property
    def tally(self) -> Tally | None:
        """A stream's tally (None for complete answers)."""
        ...
