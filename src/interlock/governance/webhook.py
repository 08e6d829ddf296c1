"""Signed webhooks, delivered in the background with bounded retries: budget alerts today, approvals next.

`send` only queues (it never waits on the network); one worker task posts each event, retrying a failed
delivery (connection error, timeout, 429 or 5xx) up to `attempts` times with doubling pauses; any other
answer ends it. An event that is never delivered is handed to `on_failure` (the gateway audits it).

Signature: `x-interlock-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`. A
receiver recomputes the HMAC over the raw body, compares in constant time and rejects a `t` more than
five minutes away from its clock (`verify_signature` does all three). `x-interlock-delivery` is the same
on every retry of one event, so a receiver can drop duplicates; `x-interlock-event` names the event type.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "x-interlock-signature"
TOLERANCE_S = 300
FailureHook = Callable[[str, str, str], None]  # (event type, delivery id, why)


def sign(secret: bytes, body: bytes, ts: int) -> str:
    """The signature header's value for `body` sent at `ts`."""
    mac = hmac.new(secret, str(ts).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify_signature(secret: bytes, body: bytes, header: str, now: float | None = None) -> bool:
    """Whether `header` is a valid signature of `body` made within TOLERANCE_S of `now`."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > TOLERANCE_S:
        return False
    return hmac.compare_digest(sign(secret, body, ts), f"t={ts},v1={parts.get('v1', '')}")


class Webhook:
    """One receiver URL and its secret; events queued by `send`, posted by a worker started by `start`."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        attempts: int = 5,
        backoff_s: float = 1.0,
        timeout_s: float = 10.0,
        queue_size: int = 1000,
        on_failure: FailureHook | None = None,
    ) -> None:
        self.url, self._secret = url, secret
        self.attempts, self.backoff_s, self.timeout_s = attempts, backoff_s, timeout_s
        self._queue: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue(queue_size)
        self._on_failure = on_failure
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        """Start the delivery worker in the running loop."""
        if self._task is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
            self._task = asyncio.create_task(self._work(), name="interlock-webhook")

    def send(self, event: str, payload: Mapping[str, Any]) -> str | None:
        """Queue one event; its delivery id, or None when the queue is full (the event is dropped, and said)."""
        delivery = uuid.uuid4().hex
        body = orjson.dumps({"type": event, "id": delivery, "created": time.time(), "data": payload})
        try:
            self._queue.put_nowait((event, delivery, body))
        except asyncio.QueueFull:
            self._failed(event, delivery, "the webhook queue is full")
            return None
        return delivery

    async def drain(self) -> None:
        """Wait until every queued event is delivered or given up."""
        await self._queue.join()

    async def close(self) -> None:
        """Stop the worker (events still queued are not sent) and close the connection pool."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _failed(self, event: str, delivery: str, why: str) -> None:
        log.warning("webhook %s (%s) to %s not delivered: %s", event, delivery, self.url, why)
        if self._on_failure is not None:
            self._on_failure(event, delivery, why)

    async def _work(self) -> None:
        while True:
            event, delivery, body = await self._queue.get()
            try:
                why = await self._deliver(event, delivery, body)
                if why is not None:
                    self._failed(event, delivery, why)
            except Exception:  # the worker outlives any one event
                log.exception("webhook delivery failed")
            finally:
                self._queue.task_done()

    async def _deliver(self, event: str, delivery: str, body: bytes) -> str | None:
        """Post until accepted; None when delivered, else why not."""
        assert self._session is not None
        why = ""
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            headers = {
                "content-type": "application/json",
                "x-interlock-event": event,
                "x-interlock-delivery": delivery,
                SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
            }
            try:
                async with self._session.post(self.url, data=body, headers=headers) as r:
                    if r.status < 300:
                        return None
                    why = f"HTTP {r.status}"
                    if r.status != 429 and r.status < 500:
                        return why  # the receiver refuses it: retrying changes nothing
            except (aiohttp.ClientError, TimeoutError) as exc:
                why = f"{type(exc).__name__}: {exc}"
        return f"{why} after {self.attempts} attempts"
