"""Policy keys, lookups and scope precedence."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from interlock.guardrails.policy import DEFAULT_RULES, PolicyBook, PolicyRules, Scoped, lookup


def test_lookup_prefers_exact_then_longest_prefix_then_star() -> None:
    actions = {"SECRET_*": "redact", "SECRET_AWS_*": "block", "SECRET_JWT": "log", "*": "log"}
    assert lookup(actions, "SECRET_JWT") == "log"
    assert lookup(actions, "SECRET_AWS_KEY") == "block"
    assert lookup(actions, "SECRET_GITHUB_TOKEN") == "redact"
    assert lookup(actions, "SECRET") == "redact"  # the generic type is covered by its prefix
    assert lookup(actions, "EMAIL_ADDRESS") == "log"
    assert lookup({"SECRET_*": "redact"}, "EMAIL_ADDRESS") is None


def test_most_specific_scope_wins_per_entity() -> None:
    book = PolicyBook(
        DEFAULT_RULES,
        [
            Scoped("org", "o1", PolicyRules(input={"EMAIL_ADDRESS": "pseudonymise", "CREDIT_CARD": "block"})),
            Scoped("team", "t1", PolicyRules(input={"EMAIL_ADDRESS": "redact"})),
            Scoped("model", "gpt", PolicyRules(input={"PHONE_NUMBER": "restrict"})),
        ],
    )
    p = book.resolve(key_id="k1", team_id="t1", org_id="o1", model="gpt")
    assert p.input_action("EMAIL_ADDRESS") == "redact"  # team over org
    assert p.input_action("CREDIT_CARD") == "block"  # org over the default's restrict
    assert p.input_action("PHONE_NUMBER") == "restrict"  # model over the default's *
    assert p.input_action("SECRET_AWS_KEY") == "redact"  # the default
    other = book.resolve(key_id="k2", team_id=None, org_id=None, model="local")
    assert other.input_action("CREDIT_CARD") == "restrict"
    book.replace([])
    assert book.resolve(key_id="k1", team_id="t1", org_id="o1", model="gpt").input_action("CREDIT_CARD") == "restrict"


def test_custom_patterns_merge_with_the_specific_scope_winning() -> None:
    book = PolicyBook(
        PolicyRules(patterns={"PROJECT": r"PRJ-\d+"}),
        [Scoped("org", "o1", PolicyRules(patterns={"PROJECT": r"ACME-\d{4}"}, keywords={"CODENAME": ["bluebird"]}))],
    )
    p = book.resolve(key_id=None, team_id=None, org_id="o1", model=None)
    assert dict(p.patterns) == {"PROJECT": r"ACME-\d{4}"}
    assert dict(p.keywords) == {"CODENAME": ("bluebird",)}


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"input": {"credit card": "block"}}, "not an entity type"),
        ({"input": {"CREDIT_CARD": "shred"}}, "Input should be"),
        ({"output": {"EMAIL_ADDRESS": "pseudonymise"}}, "Input should be"),
        ({"patterns": {"PROJECT": "("}}, "does not compile"),
        ({"patterns": {"PROJECT": "a*"}}, "matches the empty string"),
        ({"patterns": {"PROJECT": "(a+)+$"}}, "backtracks catastrophically"),
        ({"patterns": {"project": "x"}}, "must be upper case"),
        ({"keywords": {"CODENAME": []}}, "is empty"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_invalid_policies_are_refused_with_a_reason(rules: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PolicyRules.model_validate(rules)


def test_an_agent_scope_sits_between_its_key_and_its_team() -> None:
    book = PolicyBook(
        DEFAULT_RULES,
        [
            Scoped("team", "t1", PolicyRules(input={"EMAIL_ADDRESS": "log", "PHONE_NUMBER": "log"})),
            Scoped("agent", "a1", PolicyRules(input={"EMAIL_ADDRESS": "block", "PHONE_NUMBER": "redact"})),
            Scoped("key", "k1", PolicyRules(input={"PHONE_NUMBER": "pseudonymise"})),
        ],
    )
    p = book.resolve(key_id="k1", agent_id="a1", team_id="t1", org_id=None, model=None)
    assert (p.input_action("EMAIL_ADDRESS"), p.input_action("PHONE_NUMBER")) == ("block", "pseudonymise")
    human = book.resolve(key_id="k2", team_id="t1", org_id=None, model=None)
    assert human.input_action("EMAIL_ADDRESS") == "log"
