"""The app's lifespan: services close in reverse order of their start, also when a start fails half-way."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from interlock.app import create_app
from interlock.auth.keys import Keys
from interlock.gateway.gateway import Gateway
from interlock.governance.admission import Governance
from interlock.governance.reconcile import Reconciler
from interlock.mcp.gateway import McpGateway
from interlock.mcp.server import McpService
from interlock.settings import Settings
from interlock.store.sqlite import SqliteStore


def _spy_closes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    closed: list[str] = []
    for cls, name in [
        (SqliteStore, "store"),
        (Keys, "keys"),
        (Governance, "governance"),
        (Reconciler, "reconciler"),
        (McpGateway, "mcp upstreams"),
        (Gateway, "gateway"),
    ]:
        original = cls.close

        async def spy(self: Any, _original: Any = original, _name: str = name) -> None:
            closed.append(_name)
            await _original(self)

        monkeypatch.setattr(cls, "close", spy)
    return closed


def test_a_start_that_fails_half_way_closes_what_had_started(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = _spy_closes(monkeypatch)

    async def broken(self: McpGateway) -> None:
        raise RuntimeError("the upstream MCP server would not start")

    monkeypatch.setattr(McpGateway, "start", broken)
    with pytest.raises(RuntimeError, match="would not start"), TestClient(create_app(settings)):
        pass
    # The MCP upstreams never started, so they are not closed; the gateway was never built.
    assert closed == ["reconciler", "governance", "keys", "store"]


def test_shutdown_stops_mcp_serving_first_and_the_store_last(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = _spy_closes(monkeypatch)
    original_run = McpService.run

    def run(self: McpService, *args: Any, **kwargs: Any) -> Any:
        inner = original_run(self, *args, **kwargs)

        class Spied:
            async def __aenter__(self) -> None:
                await inner.__aenter__()

            async def __aexit__(self, *exc: Any) -> Any:
                closed.append("mcp serving")
                return await inner.__aexit__(*exc)

        return Spied()

    monkeypatch.setattr(McpService, "run", run)
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert closed == []
    assert closed == ["mcp serving", "gateway", "mcp upstreams", "reconciler", "governance", "keys", "store"]
