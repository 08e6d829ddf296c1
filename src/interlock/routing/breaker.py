"""A circuit breaker per deployment: stop sending traffic to a deployment that keeps failing.

Closed: requests flow; `failures` consecutive failures open it. Open: no requests for `cooldown`
seconds. Then half-open: exactly one probe request is let through; its success closes the breaker,
its failure opens it for another cooldown. Works with a single deployment too, so a dead upstream
fails fast with 503 instead of making every client wait for a timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Counts consecutive failures; decides whether a request may go to its deployment."""

    def __init__(self, failures: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        """The current state."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def retry_after(self) -> float:
        """Seconds until a probe will be allowed (0 when closed or half-open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether a request may go now; in half-open state only the first caller gets the probe."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def available(self) -> bool:
        """Whether `allow()` would say yes, without taking the probe."""
        state = self.state
        return state == "closed" or (state == "half_open" and not self._probing)

    def record_success(self) -> None:
        """A request succeeded: close the breaker."""
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        """A request failed: count it, and open the breaker at the threshold (or if the probe failed)."""
        self._failures += 1
        if self._probing or self._failures >= self.threshold:
            self._opened_at = self._clock()
        self._probing = False
