"""The scrape-time collectors: an engine's load and decode speed, read from its provider's `stats()`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry

from interlock.observability.collectors import RoutesCollector
from interlock.providers.base import Provider
from interlock.routing.deployments import Deployment, ModelRoute
from interlock.settings import ModelSettings
from interlock.types import Price


class EngineLike(Provider):
    """A provider whose `stats()` looks like the embedded engine's."""

    kind = "local"

    def __init__(self) -> None:
        super().__init__("smollm2", ModelSettings(provider="local"))
        self.numbers: dict[str, Any] = {"state": "loading"}

    def stats(self) -> dict[str, Any]:
        return self.numbers


def _sample(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name, {"alias": "smollm2", "deployment": "smollm2"})


def test_engine_load_and_decode_speed_between_scrapes() -> None:
    engine = EngineLike()
    model = ModelSettings(provider="local")
    dep = Deployment("smollm2", "smollm2", engine, model, Price(Decimal(0), Decimal(0), "test"))
    now = [100.0]
    registry = CollectorRegistry()
    registry.register(
        RoutesCollector(lambda: {"smollm2": ModelRoute("smollm2", model, [dep], [])}, clock=lambda: now[0])
    )

    assert _sample(registry, "interlock_engine_slots_busy") is None  # not loaded yet: no engine series
    stats = {"slots": 8, "slots_busy": 3, "queue_length": 2, "queue_size": 64, "completion_tokens": 1000}
    engine.numbers = {**stats, "prompt_tokens": 50, "requests_done": 4}
    assert _sample(registry, "interlock_engine_slots_busy") == 3
    assert _sample(registry, "interlock_engine_queue_length") == 2
    assert _sample(registry, "interlock_engine_decode_tokens_per_second") == 0  # nothing to compare with yet
    now[0] += 2.0
    engine.numbers["completion_tokens"] = 1300
    assert _sample(registry, "interlock_engine_decode_tokens_per_second") == 150  # 300 tokens in 2 s
    assert _sample(registry, "interlock_engine_completion_tokens_total") == 1300
    assert _sample(registry, "interlock_engine_requests_total") == 4


def test_engine_prompt_tokens_skipped_and_the_prompt_cache() -> None:
    engine = EngineLike()
    model = ModelSettings(provider="local")
    dep = Deployment("smollm2", "smollm2", engine, model, Price(Decimal(0), Decimal(0), "test"))
    registry = CollectorRegistry()
    registry.register(RoutesCollector(lambda: {"smollm2": ModelRoute("smollm2", model, [dep], [])}))
    engine.numbers = {"slots_busy": 0, "prompt_tokens_reused": 10, "prompt_tokens_shared": 20,
                      "prompt_tokens_cached": 30, "prompt_cache_bytes": 4096}  # fmt: skip
    labels = {"alias": "smollm2", "deployment": "smollm2"}
    for source, n in (("reused", 10), ("shared", 20), ("cached", 30)):
        sample = registry.get_sample_value("interlock_engine_prompt_tokens_skipped_total", {**labels, "source": source})
        assert sample == n
    assert _sample(registry, "interlock_engine_prompt_cache_bytes") == 4096
