"""`interlock guardrails set|list|delete|scan`: scoped guardrail policies, and a dry run of the detectors.

A running server applies a change within `guardrails.refresh_s`.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from interlock import admin
from interlock.admin import GuardrailRef, GuardrailSet
from interlock.cli.options import ConfigOption, fail, settings_or_exit, spec
from interlock.cli.services import call

app = typer.Typer(help="Guardrail policies on orgs, teams, keys and models; test the detectors.", no_args_is_help=True)
Scope = Annotated[Literal["key", "agent", "team", "org", "model"], typer.Argument(help="What the policy is on")]
ScopeId = Annotated[str, typer.Argument(help="The key, agent, team or org id, or a model alias")]
Pairs = Annotated[list[str] | None, typer.Option(help="ENTITY=ACTION, repeatable (ENTITY may be PREFIX_* or *)")]


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise fail(f"--{what} takes NAME=VALUE, not {item!r}")
        out[name.strip()] = value.strip()
    return out


@app.command("set")
def set_policy(
    scope: Scope,
    scope_id: ScopeId,
    input: Pairs = None,
    output: Pairs = None,
    pattern: Annotated[list[str] | None, typer.Option(help="NAME=REGEX, a custom entity type, repeatable")] = None,
    keyword: Annotated[list[str] | None, typer.Option(help="NAME=word,word,...: a keyword list, repeatable")] = None,
    config: ConfigOption = None,
) -> None:
    """Set (replace) the guardrail policy of one scope."""
    keywords = {k: [w.strip() for w in v.split(",") if w.strip()] for k, v in _pairs(keyword, "keyword").items()}
    rules = {
        "input": _pairs(input, "input"),
        "output": _pairs(output, "output"),
        "patterns": _pairs(pattern, "pattern"),
        "keywords": keywords,
    }
    body = spec(GuardrailSet, scope=scope, scope_id=scope_id, rules=rules)
    policy = call(config, lambda ctx, actor: admin.set_guardrail_policy(ctx, actor, body))
    Console().print(f"Guardrail policy on {scope} {scope_id}: {json.dumps(policy.rules)}")


@app.command("delete")
def delete_policy(scope: Scope, scope_id: ScopeId, config: ConfigOption = None) -> None:
    """Remove the guardrail policy of one scope."""
    ref = spec(GuardrailRef, scope=scope, scope_id=scope_id)
    call(config, lambda ctx, actor: admin.delete_guardrail_policy(ctx, actor, ref))
    Console().print(f"Removed the guardrail policy on {scope} {scope_id}.")


@app.command("list")
def list_policies(config: ConfigOption = None) -> None:
    """List the scoped guardrail policies (the config's [guardrails.policy] applies everywhere else)."""
    table = Table("scope", "id", "input", "output", "custom", "set by", title="Guardrail policies")
    for p in call(config, admin.list_guardrail_policies):
        r = p.rules
        custom = [*dict(r.get("patterns") or {}), *dict(r.get("keywords") or {})]  # type: ignore[call-overload]
        table.add_row(
            p.scope,
            p.scope_id,
            json.dumps(r.get("input", {})),
            json.dumps(r.get("output", {})),
            ", ".join(custom),
            p.updated_by,
        )
    Console().print(table)


@app.command("scan")
def scan(text: Annotated[str, typer.Argument(help="The text to scan")], config: ConfigOption = None) -> None:
    """Run the configured detectors on TEXT and show what the default policy would do (nothing is sent)."""
    from interlock.guardrails.service import GuardrailService  # the detectors take a second to build

    settings = settings_or_exit(config)
    service = GuardrailService(settings.guardrails, settings.source)
    policy = service.book.resolve(key_id=None, team_id=None, org_id=None, model=None)
    table = Table("entity", "start", "end", "score", "input action", "output action", title="Findings")
    for f in service.scanners.content(policy).scan(text):
        table.add_row(
            f.entity,
            str(f.start),
            str(f.end),
            f"{f.score:.2f}",
            policy.input_action(f.entity) or "-",
            policy.output_action(f.entity) or "-",
        )
    Console().print(table)
