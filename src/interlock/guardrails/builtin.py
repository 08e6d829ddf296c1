"""The built-in guardrail plugins (entry-point group `interlock.guardrails`): each names a detector and
the options its `[guardrails.detectors.NAME]` (or `[guardrails.untrusted.NAME]`) table takes.

Detectors are built once per process and options (building Presidio's recognizers takes a while), and
imported only when a config names them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import Field

from interlock.guardrails.findings import Detector
from interlock.plugins.registry import Plugin, PluginOptions


class PiiOptions(PluginOptions):
    """`[guardrails.detectors.pii]`: structured identifiers (Presidio's pattern recognizers and ours)."""

    entities: tuple[str, ...] | None = None  # None: the default set (see `detectors.pii.DEFAULT_ENTITIES`)
    score_threshold: float = Field(default=0.5, ge=0, le=1)
    phone_regions: tuple[str, ...] | None = None  # ISO regions whose national phone formats count


class SecretsOptions(PluginOptions):
    """`[guardrails.detectors.secrets]`: API keys, tokens and private keys (detect-secrets and our patterns)."""

    entropy: bool = False  # detect-secrets' high-entropy string plugins: they flag ordinary words, so off


class InjectionOptions(PluginOptions):
    """`[guardrails.untrusted.injection]`: prompt injection, hidden unicode and exfiltration links."""


@cache
def _pii(options: PiiOptions) -> Detector:
    from interlock.guardrails.detectors.pii import DEFAULT_PHONE_REGIONS, PiiDetector

    return PiiDetector(
        entities=options.entities,
        score_threshold=options.score_threshold,
        phone_regions=options.phone_regions or DEFAULT_PHONE_REGIONS,
    )


@cache
def _secrets(options: SecretsOptions) -> Detector:
    from interlock.guardrails.detectors.secrets import SecretsDetector

    return SecretsDetector(entropy=options.entropy)


@cache
def _injection(options: InjectionOptions) -> Detector:
    from interlock.guardrails.detectors.injection import InjectionDetector

    return InjectionDetector()


def _factory(build: Any) -> Any:
    def create(options: Any) -> Detector:
        detector: Detector = build(options)
        return detector

    return create


PII: Plugin[Any] = Plugin("pii", PiiOptions, _factory(_pii))
SECRETS: Plugin[Any] = Plugin("secrets", SecretsOptions, _factory(_secrets))
INJECTION: Plugin[Any] = Plugin("injection", InjectionOptions, _factory(_injection))
