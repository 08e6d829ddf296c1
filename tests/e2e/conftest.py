"""Run `interlock serve` in a subprocess on a free port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ADMIN_KEY, free_port, wait_http


@dataclass
class Server:
    """A running gateway process."""

    url: str
    home: Path
    proc: subprocess.Popen[bytes]

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no flush."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def start_server(tmp_path: Path, config: str | None, index: int = 0, ready_timeout: float = 120.0) -> Server:
    """Start `interlock serve` with `config` in a fresh home under `tmp_path`."""
    home = tmp_path / f"home{index}"
    port = free_port()
    args = [sys.executable, "-m", "interlock.cli.main", "serve", "--port", str(port), "--log-level", "warning"]
    if config is not None:
        path = tmp_path / f"config{index}.toml"
        path.write_text(config)
        args += ["--config", str(path)]
    env = {**os.environ, "INTERLOCK_HOME": str(home), "INTERLOCK_ADMIN_KEY": ADMIN_KEY, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / f"server{index}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/readyz", ready_timeout, proc, log)
    except BaseException:
        proc.kill()
        raise
    return Server(url, home, proc)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[str | None], Server]]:
    """Start gateways; each is stopped at the end of the test."""

    servers: list[Server] = []

    def start(config: str | None, ready_timeout: float = 120.0) -> Server:
        server = start_server(tmp_path, config, len(servers), ready_timeout)
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        proc = server.proc
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
