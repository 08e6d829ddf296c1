"""The spend-velocity guard: a key whose spend per minute spikes is alerted on and can be suspended."""

from __future__ import annotations

import time

from starlette.testclient import TestClient

from interlock.governance.velocity import VelocityGuard, find_spikes


def test_find_spikes_against_the_norm() -> None:
    rows = [("calm", m, 100) for m in range(0, 60)] + [("calm", 60, 150)]
    rows += [("loop", m, 100) for m in range(0, 60)] + [("loop", 60, 5000)]
    rows += [("new", 60, 2_000_000)]  # no history: any spend above the floor is a spike
    alerts = find_spikes(rows, minute=60, history=60, factor=10, minimum=1000)
    assert sorted(a.key_id for a in alerts) == ["loop", "new"]
    assert [a.key_id for a in find_spikes(rows, minute=60, history=60, factor=10, minimum=10_000)] == ["new"]


def test_guard_alerts_once_and_suspends(client: TestClient) -> None:
    state = client.app.state.interlock  # type: ignore[attr-defined]
    created = client.post("/admin/keys", json={"name": "agent"}).json()
    auth = {"authorization": f"Bearer {created['key']}"}
    for _ in range(5):
        assert (
            client.post(
                "/v1/chat/completions",
                json={"model": "echo-remote", "messages": [{"role": "user", "content": "loop"}]},
                headers=auth,
            ).status_code
            == 200
        )
    client.portal.call(state.store.flush)  # type: ignore[union-attr]
    guard = VelocityGuard(state.store, state.keys, state.audit, factor=10, min_micros=1, suspend=True)
    next_minute = (time.time() // 60 + 1) * 60 + 1  # the traffic's minute is now the last complete one
    alerts = client.portal.call(guard.check, next_minute)  # type: ignore[union-attr]
    assert [a.key_id for a in alerts] == [created["id"]]
    assert client.portal.call(guard.check, next_minute) == []  # type: ignore[union-attr]
    r = client.post(
        "/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "x"}]}, headers=auth
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "suspended_api_key"
    assert "spend velocity" in r.json()["error"]["message"]
    entries = client.portal.call(state.audit.recent, 20)  # type: ignore[union-attr]
    assert any(e.action == "spend.velocity_alert" and e.target == created["id"] for e in entries)
    assert client.post(f"/admin/keys/{created['id']}/resume").json() == {"id": created["id"], "suspended": False}
    r = client.post(
        "/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "x"}]}, headers=auth
    )
    assert r.status_code == 200
