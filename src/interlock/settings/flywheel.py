"""The flywheel's section: capture and the feedback metrics."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from interlock.settings.base import _Strict


class CaptureSettings(_Strict):
    """`[flywheel.capture]`: which requests are stored for datasets (off by default; see the README's flywheel).

    A request is captured when `enabled` and it matches any list (its key, agent, team or org id, or the model
    alias it asked for); a list of `"*"` matches everything. Rows older than `retention_days` and the oldest
    rows past `max_mb` are pruned every `prune_interval_s`."""

    enabled: bool = False
    keys: list[str] = Field(default_factory=list)
    agents: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    orgs: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    retention_days: float = Field(default=30.0, gt=0)
    max_mb: float = Field(default=1024.0, gt=0)  # request and answer text, all captures together
    max_chars: int = Field(default=200_000, ge=1000)  # per request or answer: a longer one is not captured
    flush_interval_ms: int = Field(default=200, ge=1, le=60_000)
    prune_interval_s: float = Field(default=300.0, gt=0)


class FlywheelMetric(_Strict):
    """`[[flywheel.metrics]]`: a feedback metric `POST /v1/feedback` accepts."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    type: Literal["boolean", "float"]
    min: float | None = None  # floats only
    max: float | None = None


class FlywheelSettings(_Strict):
    """`[flywheel]`: capture, and the feedback metrics declared for it."""

    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    metrics: list[FlywheelMetric] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> FlywheelSettings:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("flywheel.metrics: each metric name may be declared once")
        for m in self.metrics:
            if m.type == "boolean" and (m.min is not None or m.max is not None):
                raise ValueError(f"flywheel.metrics {m.name}: a boolean metric takes no min or max")
            if m.min is not None and m.max is not None and m.min > m.max:
                raise ValueError(f"flywheel.metrics {m.name}: min is above max")
        return self
