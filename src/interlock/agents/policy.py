"""An agent's tool policy: which tools it may call, typed argument constraints, and which tools are sensitive.

Stored as JSON on the agent (`AgentRecord.policy`) and validated here, when it is set and when it is read.
Tool names match exactly or as shell-style globs (`mail_*`); a name a client gives an MCP tool,
`mcp__<server>__<tool>` (Claude Code and the Claude Agent SDK name them so), also matches as `<tool>`, so a
policy written for the MCP gateway's `bank__read_inbox` holds when the model calls it through such a client
as `mcp__interlock__bank__read_inbox`. `deny` wins over `allow`; an empty `allow`
allows every tool not denied. A constraint names one argument by a dotted path into the call's JSON
arguments (`recipient`, `payment.iban`); a call whose argument breaks a constraint is refused, and so is
one that lacks a constrained argument it should carry. Provenance (`provenance` module) applies to tools
marked `sensitive`; what an untrusted-provenance verdict does is the rule's `on_untrusted`: "refuse" (the
default) or "approve" (hold the call for a human's approval). A tool whose rule says `approval: true`, or whose
name matches a pattern in the policy's `approve` list, is always held for approval (after scope, constraints
and provenance have passed: deny wins). Approvals are bound to `canonical_arguments`' SHA-256.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from interlock.agents.provenance import lookup, normalise


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arg: str = Field(min_length=1, max_length=200, description="dotted path of the argument, e.g. 'payment.iban'")


class MaxAmount(_Rule):
    """A number (or numeric string) at most `max`."""

    type: Literal["max_amount"]
    max: Decimal


class Allowlist(_Rule):
    """A value among `values` (normalised); `domain`: an e-mail address or URL whose domain is among them."""

    type: Literal["allowlist"]
    values: list[str] = Field(min_length=1)
    match: Literal["exact", "domain"] = "exact"


class PathPrefix(_Rule):
    """A path under one of `prefixes` (no `..` segment)."""

    type: Literal["path_prefix"]
    prefixes: list[str] = Field(min_length=1)


Constraint = Annotated[MaxAmount | Allowlist | PathPrefix, Field(discriminator="type")]


class ToolRule(BaseModel):
    """The rules of one tool (or of every tool its name pattern matches)."""

    model_config = ConfigDict(extra="forbid")

    sensitive: bool = Field(default=False, description="values from untrusted content may not drive it")
    provenance_args: list[str] | None = Field(
        default=None, description="the arguments provenance checks (dotted paths); default: every value"
    )
    constraints: list[Constraint] = Field(default_factory=list)
    approval: bool = Field(default=False, description="every call is held until a human approves it")
    on_untrusted: Literal["refuse", "approve"] = Field(
        default="refuse", description="a sensitive call driven by untrusted content: refuse it, or hold it for approval"
    )


class ToolPolicy(BaseModel):
    """What an agent may do with tools."""

    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(default_factory=list, description="tool names or globs; empty: every tool")
    deny: list[str] = Field(default_factory=list)
    tools: dict[str, ToolRule] = Field(default_factory=dict, description="rules by tool name or glob")
    approve: list[str] = Field(default_factory=list, description="tool names or globs held for a human's approval")

    def permits(self, tool: str) -> bool:
        """Whether the agent may call `tool` at all."""
        if _matches(tool, self.deny):
            return False
        return not self.allow or _matches(tool, self.allow)

    def rules(self, tool: str) -> list[ToolRule]:
        """Every rule whose pattern matches `tool` (all of them apply)."""
        return [r for p, r in self.tools.items() if _matches(tool, (p,))]

    def needs_approval(self, tool: str) -> bool:
        """Whether every call to `tool` waits for a human's approval."""
        return _matches(tool, self.approve) or any(r.approval for r in self.rules(tool))


def names_of(tool: str) -> tuple[str, ...]:
    """The names a tool's rules match: its own, and for a client's `mcp__<server>__<tool>` the `<tool>` part."""
    if tool.startswith("mcp__"):
        _, sep, inner = tool[5:].partition("__")
        if sep and inner:
            return tool, inner
    return (tool,)


def _matches(tool: str, patterns: Iterable[str]) -> bool:
    names = names_of(tool)
    return any(fnmatch.fnmatchcase(name, p) for p in patterns for name in names)


def canonical_arguments(arguments: str) -> str:
    """The arguments as canonical JSON (sorted keys, no spaces): equal values give equal text; invalid JSON as is."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return arguments
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def arguments_sha256(arguments: str) -> str:
    """The SHA-256 an approval is bound to: of the canonical arguments."""
    return hashlib.sha256(canonical_arguments(arguments).encode()).hexdigest()


def _domain(value: str) -> str:
    v = normalise(value)
    if "@" in v:
        v = v.rsplit("@", 1)[1]
    v = v.split("://", 1)[-1]
    return v.split("/", 1)[0].split(":", 1)[0].strip(".")


def violation(rule: Constraint, args: object) -> str | None:
    """Why `args` break `rule` (None: they keep it). Never quotes the value."""
    value = lookup(args, rule.arg)
    if value is None:
        return f"argument '{rule.arg}' is missing"
    if isinstance(rule, MaxAmount):
        try:
            amount = Decimal(str(value).replace(",", "").strip()) if not isinstance(value, bool) else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite():
            return f"argument '{rule.arg}' is not a number"
        return f"argument '{rule.arg}' exceeds the limit of {rule.max}" if amount > rule.max else None
    if not isinstance(value, str):
        return f"argument '{rule.arg}' is not a string"
    if isinstance(rule, Allowlist):
        if rule.match == "domain":
            host = _domain(value)
            allowed = [normalise(v).lstrip("@") for v in rule.values]
            if not any(host == d or host.endswith("." + d) for d in allowed):
                return f"argument '{rule.arg}' is not in an allowed domain"
            return None
        if normalise(value) not in {normalise(v) for v in rule.values}:
            return f"argument '{rule.arg}' is not on the allowlist"
        return None
    path = value.replace("\\", "/")
    if any(seg == ".." for seg in path.split("/")):
        return f"argument '{rule.arg}' leaves its directory ('..')"
    if not any(path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/") for p in rule.prefixes):
        return f"argument '{rule.arg}' is outside the allowed paths"
    return None
