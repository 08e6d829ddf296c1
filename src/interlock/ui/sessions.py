"""Dashboard sessions: a random id in an HttpOnly cookie, everything else on the server.

The cookie carries only the session id (256 random bits). The server keeps, per session, the key that
signed in (so every request re-authenticates it: a key revoked, suspended or expired since sign-in ends
its sessions at once), the CSRF token that every change must echo, and the times that bound its life: an
absolute lifetime from sign-in and an idle timeout from the last request. Sessions live in this process
only: behind several replicas, route a browser to one replica (sticky sessions), or it signs in again.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "interlock_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


@dataclass(slots=True)
class Session:
    """One signed-in browser."""

    id: str
    token: str  # the key that signed in; never sent back to the browser
    csrf: str
    created: float
    seen: float

    def csrf_matches(self, presented: str | None) -> bool:
        """Whether `presented` is this session's CSRF token (constant time)."""
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class Sessions:
    """Session id -> `Session`, bounded in number and in time."""

    def __init__(
        self,
        *,
        ttl_s: float = 8 * 3600,
        idle_s: float = 3600,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl_s = ttl_s
        self.idle_s = idle_s
        self._max = max_sessions
        self._clock = clock
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def create(self, token: str) -> Session:
        """A new session for a key that has just authenticated; the oldest is dropped when full."""
        self._expire()
        while len(self._by_id) >= self._max:
            self._by_id.popitem(last=False)
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), token, secrets.token_urlsafe(32), now, now)
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (its idle timer restarts), or None if unknown or expired."""
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.created >= self.ttl_s or now - session.seen >= self.idle_s:
            del self._by_id[session_id]
            return None
        session.seen = now
        self._by_id.move_to_end(session_id)
        return session

    def drop(self, session_id: str) -> None:
        """End a session (sign-out)."""
        self._by_id.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._by_id)

    def _expire(self) -> None:
        now = self._clock()
        dead = [s.id for s in self._by_id.values() if now - s.created >= self.ttl_s or now - s.seen >= self.idle_s]
        for session_id in dead:
            del self._by_id[session_id]
