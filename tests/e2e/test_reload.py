"""Config reload under load: variants swapped by `POST /admin/reload` and by SIGHUP, with no failed request."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, FAKE_CONFIG
from tests.e2e.conftest import Server

pytestmark = pytest.mark.subprocess

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def _variants(base: float, new: float) -> str:
    return f"""
[models.chat]
variants = [{{name = "base", model = "echo", weight = {base}}}, {{name = "new", model = "echo-remote", weight = {new}}}]
"""


async def _load(url: str, stop: asyncio.Event, seen: Counter[str], failures: list[str]) -> None:
    """One client asking for `chat` until told to stop (at most 3,000 requests)."""
    async with httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=30) as client:
        for i in range(3000):
            if stop.is_set():
                return
            try:
                r = await client.post(
                    "/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": f"q{i}"}]}
                )
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            if r.status_code != 200:
                failures.append(f"{r.status_code} {r.text[:200]}")
            else:
                seen[r.headers["x-interlock-variant"]] += 1


async def _weights(client: httpx.AsyncClient) -> dict[str, float]:
    entry = (await client.get("/v1/models/chat")).json()
    return {v["name"]: v["weight"] for v in entry["variants"]}


def test_variants_swap_under_load_with_no_failed_request(serve: Callable[..., Server], tmp_path: Path) -> None:
    server = serve(FAKE_CONFIG + _variants(1, 0))
    config = tmp_path / "config0.toml"  # where `serve` wrote it

    async def scenario() -> tuple[Counter[str], list[str], list[dict[str, float]]]:
        stop, seen = asyncio.Event(), Counter[str]()
        failures: list[str] = []
        clients = [asyncio.create_task(_load(server.url, stop, seen, failures)) for _ in range(8)]
        observed: list[dict[str, float]] = []
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN, timeout=30) as admin:
            await asyncio.sleep(0.5)
            config.write_text(FAKE_CONFIG + _variants(0, 1) + '\n[models.extra]\nprovider = "fake"\n')
            r = await admin.post("/admin/reload")
            assert r.status_code == 200, r.text
            assert r.json()["added"] == ["extra"] and r.json()["changed"] == ["chat"]
            observed.append(await _weights(admin))
            await asyncio.sleep(0.5)
            config.write_text(FAKE_CONFIG + "[models.chat]\nvariants = 3\n")  # invalid: refused, old one serves
            bad = await admin.post("/admin/reload")
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "config_invalid"
            await asyncio.sleep(0.3)
            config.write_text(FAKE_CONFIG + _variants(1, 0))
            server.proc.send_signal(signal.SIGHUP)  # the same reload, by signal
            deadline = time.monotonic() + 10
            while (await _weights(admin)) != {"base": 1.0, "new": 0.0} and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            observed.append(await _weights(admin))
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*clients)
            gone = await admin.post(
                "/v1/chat/completions", json={"model": "extra", "messages": [{"role": "user", "content": "x"}]}
            )
            assert gone.status_code == 404  # removed again by the last reload
        return seen, failures, observed

    seen, failures, observed = asyncio.run(scenario())
    assert failures == []
    assert observed == [{"base": 0.0, "new": 1.0}, {"base": 1.0, "new": 0.0}]
    assert seen["base"] > 0 and seen["new"] > 0  # traffic moved to the new variant and back
    assert server.proc.poll() is None  # SIGHUP reloaded; it did not stop the server
