"""Guardrail policies: what to do with each entity type, on input and on output, per scope.

A policy maps entity types to actions. Keys are an entity type (`CREDIT_CARD`), a prefix pattern
(`SECRET_*`: every secret type) or `*` (any other type); the most precise key wins within one
policy. Input actions are `block`, `redact`, `pseudonymise`, `restrict` and `log`; output actions
are `block`, `redact` and `log` (a pseudonymised value is restored in the answer, never detected
there, since the model only ever saw its placeholder).

Policies come from the config (`[guardrails.policy]`, the default for every request) and from
scoped rules set through the admin API or CLI, on an org, a team, an agent, a key or a model alias.
For each entity type, the most specific scope that names it wins: key, then agent, then team, then
org, then model, then the config's default. A scoped policy may also add custom patterns and keyword lists (project
code names, customer ids), which run beside the configured detectors for requests in that scope.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from interlock.guardrails.detectors.custom import compile_keywords, compile_pattern

Action = Literal["block", "redact", "pseudonymise", "restrict", "log"]
OutputAction = Literal["block", "redact", "log"]
ScopeKind = Literal["key", "agent", "team", "org", "model"]
SCOPE_ORDER: tuple[ScopeKind, ...] = ("key", "agent", "team", "org", "model")
"""Most specific first: for each entity type, the first scope in this order that names it wins."""

ACTION_RANK: dict[str, int] = {"log": 0, "redact": 1, "pseudonymise": 1, "restrict": 2, "block": 3}
_KEY = re.compile(r"^(\*|[A-Z][A-Z0-9_]{0,63}(_\*)?)$")


def _check_keys(actions: Mapping[str, str]) -> Mapping[str, str]:
    for key in actions:
        if not _KEY.match(key):
            raise ValueError(
                f"{key!r} is not an entity type: use upper-case names like CREDIT_CARD, a prefix like SECRET_*, or *"
            )
    return actions


class PolicyRules(BaseModel):
    """One policy: actions by entity type, and custom detectors (the body of PUT /admin/guardrails)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: dict[str, Action] = Field(default_factory=dict)
    output: dict[str, OutputAction] = Field(default_factory=dict)
    patterns: dict[str, str] = Field(default_factory=dict)
    """Custom entity type -> regular expression (Python `re` syntax), matched on input and output."""
    keywords: dict[str, list[str]] = Field(default_factory=dict)
    """Custom entity type -> words or phrases, matched case-insensitively as whole words."""

    @field_validator("input", "output")
    @classmethod
    def _entity_keys(cls, v: dict[str, str]) -> dict[str, str]:
        _check_keys(v)
        return v

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, v: dict[str, str]) -> dict[str, str]:
        for name, pattern in v.items():
            compile_pattern(name, pattern)  # CustomPatternError is a ValueError: pydantic reports it
        return v

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, words in v.items():
            compile_keywords(name, words)
        return v


DEFAULT_RULES = PolicyRules(
    input={
        "SECRET_*": "redact",
        "CREDIT_CARD": "restrict",
        "IBAN_CODE": "restrict",
        "US_SSN": "restrict",
        "*": "log",
    },
    output={"SECRET_*": "redact"},
)
"""The shipped default: a secret never reaches any model; card numbers, IBANs and SSNs only reach local
or sovereign deployments (automatic data residency); everything else found is audited."""


def lookup(actions: Mapping[str, str], entity: str) -> str | None:
    """The action `actions` gives `entity`: its own key, else the longest matching prefix key (`SECRET_*`
    covers `SECRET` and every `SECRET_...`), else `*`."""
    found = actions.get(entity)
    if found is not None:
        return found
    best: tuple[int, str] | None = None
    for key, action in actions.items():
        if not key.endswith("_*") or (best is not None and len(key) <= best[0]):
            continue
        if entity.startswith(key[:-1]) or entity == key[:-2]:  # SECRET_* covers SECRET_AWS_KEY and SECRET
            best = (len(key), action)
    if best is not None:
        return best[1]
    return actions.get("*")


@dataclass(frozen=True, slots=True)
class Scoped:
    """A policy set on one scope."""

    kind: ScopeKind
    scope_id: str
    rules: PolicyRules


@dataclass(frozen=True, slots=True)
class Effective:
    """The policy one request runs under: its layers, most specific first, ending with the default."""

    layers: tuple[PolicyRules, ...]
    patterns: Mapping[str, str] = field(default_factory=dict)
    keywords: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def input_action(self, entity: str) -> str | None:
        """The input action for `entity` (None: not acted on)."""
        for rules in self.layers:
            found = lookup(rules.input, entity)
            if found is not None:
                return found
        return None

    def output_action(self, entity: str) -> str | None:
        """The output action for `entity` (None: not acted on)."""
        for rules in self.layers:
            found = lookup(rules.output, entity)
            if found is not None:
                return found
        return None

    @property
    def scans_output(self) -> bool:
        """Whether any output action is set (streams are then held back and scanned)."""
        return any(rules.output for rules in self.layers)


class PolicyBook:
    """The default policy and the scoped ones, resolved per request (pure: the hook refreshes it)."""

    def __init__(self, default: PolicyRules, scoped: Iterable[Scoped] = ()) -> None:
        self.default = default
        self._scoped: dict[tuple[str, str], PolicyRules] = {(s.kind, s.scope_id): s.rules for s in scoped}
        self._cache: dict[tuple[str | None, ...], Effective] = {}

    def replace(self, scoped: Iterable[Scoped]) -> None:
        """Swap in a fresh set of scoped policies (after a change or a refresh from the store)."""
        self._scoped = {(s.kind, s.scope_id): s.rules for s in scoped}
        self._cache = {}

    def resolve(
        self,
        *,
        key_id: str | None,
        team_id: str | None,
        org_id: str | None,
        model: str | None,
        agent_id: str | None = None,
    ) -> Effective:
        """The effective policy for a request by this key (of this agent, team and org) to this model alias."""
        ids = (key_id, agent_id, team_id, org_id, model)
        found = self._cache.get(ids)
        if found is not None:
            return found
        layers: list[PolicyRules] = []
        for kind, scope_id in zip(SCOPE_ORDER, ids, strict=True):
            rules = self._scoped.get((kind, scope_id)) if scope_id else None
            if rules is not None:
                layers.append(rules)
        layers.append(self.default)
        patterns: dict[str, str] = {}
        keywords: dict[str, tuple[str, ...]] = {}
        for rules in reversed(layers):  # the more specific layer's definition of a name wins
            patterns.update(rules.patterns)
            keywords.update({k: tuple(v) for k, v in rules.keywords.items()})
        found = Effective(tuple(layers), patterns, keywords)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[ids] = found
        return found
