"""Traffic signals add up across flushes (and replicas), and keys are adopted once, on SQLite and PostgreSQL."""

from __future__ import annotations

from interlock.store import Store
from interlock.store.records import KeyRecord
from interlock.store.signal_queries import SignalRow


async def test_counts_add_up_and_the_last_framework_seen_is_kept(store: Store) -> None:
    await store.add_traffic_signals([SignalRow("k", 10, 3, 3, 1, 0, 1, "langchain"), SignalRow("k", 11, 1)])
    await store.add_traffic_signals([SignalRow("k", 10, 2, 0, 2, 1, 0, ""), SignalRow("j", 10, 5, framework="crewai")])
    rows = sorted(await store.traffic_signals(10), key=lambda r: (r.key_id, r.hour))
    assert rows == [
        SignalRow("j", 10, 5, 0, 0, 0, 0, "crewai"),
        SignalRow("k", 10, 5, 3, 3, 1, 1, "langchain"),  # an empty framework does not erase a seen one
        SignalRow("k", 11, 1, 0, 0, 0, 0, ""),
    ]
    assert [r.hour for r in await store.traffic_signals(11)] == [11]
    assert await store.prune_traffic_signals(11) == 2
    assert [r.hour for r in await store.traffic_signals(0)] == [11]


async def test_a_key_is_adopted_once_and_never_when_revoked(store: Store) -> None:
    for key_id in ("key_a", "key_b"):
        await store.insert_key(KeyRecord(key_id, key_id, "", "h" + key_id, "p", (), 1.0))
    await store.revoke_key("key_b", 2.0)
    assert await store.adopt_key("key_a", "agt_1")
    assert not await store.adopt_key("key_a", "agt_2")  # already an agent's
    assert not await store.adopt_key("key_b", "agt_3")  # revoked
    assert {k.id: k.agent_id for k in await store.list_keys()} == {"key_a": "agt_1", "key_b": None}
