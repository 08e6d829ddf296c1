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


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[str | None], Server]]:
    """Start gateways; each is stopped at the end of the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(config: str | None, ready_timeout: float = 120.0) -> Server:
        home = tmp_path / f"home{len(procs)}"
        port = free_port()
        args = [
            sys.executable,
            "-m",
            "interlock.cli.main",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        if config is not None:
            path = tmp_path / f"config{len(procs)}.toml"
            path.write_text(config)
            args += ["--config", str(path)]
        env = {
            **os.environ,
            "INTERLOCK_HOME": str(home),
            "INTERLOCK_ADMIN_KEY": ADMIN_KEY,
            "PYTHONUNBUFFERED": "1",
        }
        log = tmp_path / f"server{len(procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/readyz", ready_timeout, proc, log)
        return Server(url, home, proc)

    yield start  # type: ignore[misc]
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
