"""Telling the agents' open `/mcp` sessions that the tools (or the prompts, or the resources) changed
(`notifications/tools/list_changed`, `…/prompts/list_changed`, `…/resources/list_changed`).

The `mcp` SDK (2.3) serves two protocol eras on one endpoint, and they learn of changes differently:
- 2026-07-28 clients (the SDK client's default `mode="auto"`) hold no session: each request stands alone,
  and change notifications reach them only on a `subscriptions/listen` stream they open
  (`Client.listen(tools_list_changed=True)`). The SDK's `ListenHandler` serves those streams from an
  in-process `SubscriptionBus`; `notify` publishes `ToolsListChanged` on it.
- handshake-era clients (`mode="legacy"`, 2025 protocol versions) hold a stateful session
  (`mcp-session-id`) whose standalone GET stream carries server notifications. The SDK has no public list
  of a manager's sessions, so each session's `ServerSession` is remembered when it lists or calls tools
  (a client that never did has nothing to refresh), and `notify` sends `send_tool_list_changed` on each.
  A session that has ended cannot be told apart (the SDK drops what is sent to it, silently), so the
  registry is bounded: the `MAX_SESSIONS` most recently seen, each for `SESSION_TTL_S` after it was last
  seen.
The notification carries no data (an agent re-lists and sees only what its policy allows). Each replica
tells its own sessions: every replica lists the upstreams and refreshes the pins itself, so each sees a
change within `mcp.refresh_s` (a pin) or at once (an upstream's own `list_changed`).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import anyio
from mcp.server import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ServerEvent,
    ToolsListChanged,
)

log = logging.getLogger(__name__)

MAX_SESSIONS = 4096
SESSION_TTL_S = 24 * 3600.0
SEND_TIMEOUT_S = 5.0
_EVENTS: dict[str, Callable[[], ServerEvent]] = {
    "tools": ToolsListChanged,
    "prompts": PromptsListChanged,
    "resources": ResourcesListChanged,
}


class ToolListNotifier:
    """The listen streams and the handshake-era sessions to tell of a tool change (see the module docstring)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.bus)  # serves `subscriptions/listen`
        self._sessions: OrderedDict[str, tuple[ServerSession, float]] = OrderedDict()
        self._clock = clock

    def seen(self, ctx: ServerRequestContext[Any, Any]) -> None:
        """Remember the stateful session a request came on (none for a 2026-07-28 request)."""
        headers = getattr(ctx.request, "headers", None)
        session_id = headers.get(MCP_SESSION_ID_HEADER) if headers is not None else None
        if not session_id:
            return
        self._sessions[session_id] = (ctx.session, self._clock())
        self._sessions.move_to_end(session_id)
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)

    def sessions(self) -> list[ServerSession]:
        """The remembered sessions, dropping those not seen for `SESSION_TTL_S`."""
        cutoff = self._clock() - SESSION_TTL_S
        for session_id in [s for s, (_, at) in self._sessions.items() if at < cutoff]:
            del self._sessions[session_id]
        return [session for session, _ in self._sessions.values()]

    async def notify(self, kinds: frozenset[str] = frozenset({"tools"})) -> None:
        """Send `notifications/<kind>/list_changed` for each of `kinds` ("tools", "prompts", "resources") to
        every listen stream and remembered session."""
        for kind in sorted(kinds):
            await self.bus.publish(_EVENTS[kind]())
        async with anyio.create_task_group() as tg:  # side by side: a slow session holds up no other
            for session in self.sessions():
                tg.start_soon(self._send, session, kinds)

    @staticmethod
    async def _send(session: ServerSession, kinds: frozenset[str]) -> None:
        try:
            with anyio.fail_after(SEND_TIMEOUT_S):
                if "tools" in kinds:
                    await session.send_tool_list_changed()
                if "prompts" in kinds:
                    await session.send_prompt_list_changed()
                if "resources" in kinds:
                    await session.send_resource_list_changed()
        except Exception as exc:  # one broken session must not keep the others from hearing of it
            log.debug("telling an MCP session of a catalog change failed (%s)", type(exc).__name__)

    def close(self) -> None:
        """End the open listen streams gracefully."""
        self.listen.close()
