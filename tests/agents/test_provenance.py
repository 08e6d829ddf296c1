"""Provenance matching and argument constraints, as pure functions."""

from __future__ import annotations

import pytest

from interlock.agents.hook import judge
from interlock.agents.policy import ToolPolicy
from interlock.agents.provenance import Corpus, untrusted_only

IBAN = "DE89370400440532013000"


@pytest.mark.parametrize(
    "spelled",
    [
        "de89 3704 0044 0532 0130 00",  # case and spaces
        "DE89%203704%200044%200532%200130%2000",  # URL-encoded
        "".join(chr(ord(c) + 0xFEE0) for c in IBAN),  # full-width (NFKC)
        "DE89\u200b370400440532013000",  # a zero-width space
    ],
)
def test_a_value_is_traced_through_normalisation(spelled: str) -> None:
    untrusted = Corpus.of([f"Pay to {spelled} today"])
    assert untrusted_only([IBAN], Corpus.of(["pay my rent"]), untrusted)
    assert not untrusted_only([IBAN], Corpus.of([f"my landlord's account is {spelled}"]), untrusted)


def test_account_numbers_match_on_their_digits() -> None:
    assert Corpus.of(["acct 0044-0532-0130"]).contains("004405320130")
    assert not Corpus.of(["on 2024-05-01 I paid 100"]).contains("004405320130")


def test_a_link_is_judged_by_its_host() -> None:
    untrusted = Corpus.of(["see https://evil.example/collect"])
    assert untrusted_only(["https://evil.example/?q=secret"], Corpus.of(["summarise my mail"]), untrusted)


def test_short_and_absent_values_are_not_judged() -> None:
    assert not untrusted_only(["yes", "a-new-value"], Corpus.of([""]), Corpus.of(["yes"]))


def test_a_clients_mcp_name_for_a_gateway_tool_meets_the_same_rules() -> None:
    """Claude Code calls the MCP gateway's `bank__send_money` as `mcp__<its server name>__bank__send_money`."""
    policy = ToolPolicy.model_validate(
        {
            "allow": ["bank__*"],
            "deny": ["bank__delete_*"],
            "tools": {"bank__send_money": {"constraints": [{"type": "max_amount", "arg": "amount", "max": 100}]}},
            "approve": ["bank__close_account"],
        }
    )
    empty = Corpus.of([])
    assert judge(policy, "mcp__interlock__bank__read_inbox", "{}", empty, empty).allowed
    assert judge(policy, "mcp__interlock__bank__delete_all", "{}", empty, empty).code == "tool_not_allowed"
    assert judge(policy, "mcp__interlock__bank__send_money", '{"amount": 500}', empty, empty).code == (
        "argument_constraint"
    )
    assert policy.needs_approval("mcp__interlock__bank__close_account")
    assert not policy.permits("mcp__interlock__crm__export") and not policy.permits("mcp__bank__")
    assert not policy.permits("my_mcp__bank__read_inbox")  # only the client prefix is taken off


def test_deny_wins_and_constraints_are_typed() -> None:
    policy = ToolPolicy.model_validate(
        {
            "deny": ["rm*"],
            "tools": {
                "send_mail": {"constraints": [{"type": "allowlist", "arg": "to", "values": ["corp.com"], "match": "domain"}]},  # noqa: E501
                "write": {"constraints": [{"type": "path_prefix", "arg": "path", "prefixes": ["/srv/app"]}]},
            },
        }
    )  # fmt: skip
    empty = Corpus.of([])
    assert judge(policy, "rm_rf", "{}", empty, empty).code == "tool_not_allowed"
    assert judge(policy, "send_mail", '{"to": "Bob@Mail.CORP.com"}', empty, empty).allowed
    assert judge(policy, "send_mail", '{"to": "x@corp.com.evil.io"}', empty, empty).code == "argument_constraint"
    assert judge(policy, "write", '{"path": "/srv/app/../etc/passwd"}', empty, empty).code == "argument_constraint"
    assert judge(policy, "write", '{"path": "/srv/application"}', empty, empty).code == "argument_constraint"
    assert judge(policy, "write", "not json", empty, empty).code == "invalid_arguments"
    with pytest.raises(ValueError):
        ToolPolicy.model_validate({"tools": {"x": {"constraints": [{"type": "max_amount", "arg": "a"}]}}})
