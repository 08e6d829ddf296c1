"""The guardrails of one gateway process: detectors built from their plugins, the default policy from the
config, the scoped policies from the store (re-read every `refresh_s`, and at once after a change made
through this process), and the `Guardrails` hook that uses them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from interlock.audit.chain import AuditEvent
from interlock.background import Periodic
from interlock.guardrails.detectors.custom import CustomDetector
from interlock.guardrails.findings import Detector
from interlock.guardrails.hook import Guardrails
from interlock.guardrails.policy import DEFAULT_RULES, SCOPE_ORDER, Effective, PolicyBook, PolicyRules, Scoped
from interlock.guardrails.ports import Observer, TextScanner
from interlock.guardrails.scanner import Scanner
from interlock.plugins.registry import GUARDRAILS, PluginError, Registry
from interlock.settings import ConfigError, GuardrailSettings, describe_errors
from interlock.store.base import Store

log = logging.getLogger(__name__)


def build_detectors(
    tables: Mapping[str, Mapping[str, Any]], where: str, registry: Registry[Callable[..., object]] = GUARDRAILS
) -> tuple[list[Detector], list[str]]:
    """One detector per table (`name` -> options), and the config problems found."""
    detectors: list[Detector] = []
    problems: list[str] = []
    for name, options in tables.items():
        try:
            plugin = registry.get(name)
        except PluginError as exc:
            problems.append(f"guardrails.{where}.{name}: {exc}")
            continue
        if plugin is None:
            known = ", ".join(registry.names()) or "none"
            problems.append(f"guardrails.{where}.{name}: unknown guardrail '{name}' (registered: {known})")
            continue
        try:
            validated = plugin.options.model_validate(dict(options))
        except ValidationError as exc:
            problems += describe_errors(exc, ("guardrails", where, name))
            continue
        try:
            detectors.append(plugin.factory(validated))  # type: ignore[arg-type]
        except ValueError as exc:
            problems.append(f"guardrails.{where}.{name}: {exc}")
    return detectors, problems


def default_rules(settings: GuardrailSettings) -> tuple[PolicyRules, list[str]]:
    """The config's default policy (the shipped one when `[guardrails.policy]` is empty)."""
    if not settings.policy:
        return DEFAULT_RULES, []
    try:
        return PolicyRules.model_validate(settings.policy), []
    except ValidationError as exc:
        return DEFAULT_RULES, describe_errors(exc, ("guardrails", "policy"))


class _Scanners:
    """The configured detectors, plus each effective policy's custom patterns and keywords."""

    def __init__(self, content: Sequence[Detector], untrusted: Sequence[Detector]) -> None:
        self._content = list(content)
        self._base = Scanner(self._content)
        self._untrusted = Scanner(list(untrusted)) if untrusted else None
        self._custom: dict[tuple[object, ...], Scanner] = {}
        self._output: dict[tuple[str, ...], Scanner] = {}
        self._output_of: dict[
            int, tuple[Effective, TextScanner]
        ] = {}  # by the policy's identity (PolicyBook caches it)

    def content(self, policy: Effective) -> TextScanner:
        if not policy.patterns and not policy.keywords:
            return self._base
        key = (tuple(sorted(policy.patterns.items())), tuple(sorted(policy.keywords.items())))
        found = self._custom.get(key)
        if found is None:
            custom = CustomDetector(
                patterns=dict(policy.patterns), keywords={k: list(v) for k, v in policy.keywords.items()}
            )
            if len(self._custom) > 1000:
                self._custom.clear()
            found = self._custom[key] = Scanner([*self._content, custom])
        return found

    def output(self, policy: Effective) -> TextScanner:
        """Only the detectors that find a type the output policy acts on (answers need no other)."""
        hit = self._output_of.get(id(policy))
        if hit is not None and hit[0] is policy:  # every request of a key: worked out once
            return hit[1]
        if len(self._output_of) > 10_000:
            self._output_of.clear()
        found = self._output_for(policy)
        self._output_of[id(policy)] = (policy, found)
        return found

    def _output_for(self, policy: Effective) -> TextScanner:
        content = self.content(policy)
        relevant = [d for d in content.detectors if any(policy.output_action(e) is not None for e in d.entities)]
        if len(relevant) == len(content.detectors):
            return content
        key = tuple(sorted(str(id(d)) for d in relevant))
        found = self._output.get(key)
        if found is None:
            if len(self._output) > 1000:
                self._output.clear()
            found = self._output[key] = Scanner(relevant)
        return found

    def untrusted(self) -> TextScanner | None:
        return self._untrusted


class GuardrailService:
    """Builds the hook from the config; keeps the scoped policies in step with the store."""

    def __init__(self, settings: GuardrailSettings, source: str = "<config>") -> None:
        content, problems = build_detectors(settings.detectors, "detectors")
        untrusted, more = build_detectors(settings.untrusted, "untrusted")
        rules, bad_policy = default_rules(settings)
        problems += more + bad_policy
        if problems:
            raise ConfigError.of(source, problems)
        self.book = PolicyBook(rules)
        self.scanners = _Scanners(content, untrusted)
        self.settings = settings
        self._store: Store | None = None
        self._refresher: Periodic | None = None

    def hook(self, audit: Callable[[AuditEvent], None] | None, observer: Observer | None = None) -> Guardrails:
        """The request-path hook."""
        return Guardrails(
            self.book, self.scanners, hold_back_chars=self.settings.hold_back_chars, audit=audit, observer=observer
        )

    async def start(self, store: Store) -> None:
        """Read the scoped policies now, then every `refresh_s`."""
        self._store = store
        self._refresher = Periodic(
            self.refresh,
            self.settings.refresh_s,
            name="interlock-guardrails-refresh",
            failure="guardrail policy refresh failed; keeping the previous policies",
        )
        await self._refresher.begin()

    async def refresh(self) -> None:
        """Re-read the scoped policies (a stored policy that no longer validates is skipped, loudly)."""
        assert self._store is not None
        scoped = []
        for r in await self._store.list_guardrail_policies():
            if r.scope not in SCOPE_ORDER:
                continue
            try:
                rules = PolicyRules.model_validate(orjson.loads(r.rules))
            except (ValidationError, orjson.JSONDecodeError) as exc:
                log.error("guardrail policy %s %s is invalid and is ignored: %s", r.scope, r.scope_id, exc)
                continue
            scoped.append(Scoped(r.scope, r.scope_id, rules))
        self.book.replace(scoped)

    async def close(self) -> None:
        """Stop refreshing."""
        if self._refresher is not None:
            await self._refresher.close()
