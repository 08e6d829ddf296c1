"""A TCP proxy for fault tests: forwards loopback connections to a target until told to cut them.

`cut()` resets every open connection and refuses new ones (accepted, then closed at once) until
`restore()`: the shape of a Redis or PostgreSQL outage as a client sees it. It runs its own event
loop in a daemon thread, so a synchronous test can drive it next to an in-process app.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class TcpProxy:
    """127.0.0.1:`port` -> `target_host`:`target_port`, with an outage switch."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._down = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._shutdown)
        self._thread.join(10)
        self._loop.close()

    def _shutdown(self) -> None:
        self._set(True)
        if self._server is not None:
            self._server.close()
        self._loop.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}

    def _set(self, down: bool) -> None:
        self._down = down
        if down:
            for w in list(self._writers):
                w.transport.abort()

    def cut(self) -> None:
        """Reset every open connection and refuse new ones."""
        self._loop.call_soon_threadsafe(self._set, True)

    def restore(self) -> None:
        """Forward again."""
        self._loop.call_soon_threadsafe(self._set, False)
