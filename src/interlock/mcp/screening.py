"""The input guardrails on an MCP tool result (or a prompt, or a resource), before the agent reads it.

Each text block (and the structured content, as JSON) is scanned with the guardrail policy that applies to
the agent (`GuardrailService.book`) and the untrusted-content scanners. A blocked entity replaces the whole
result with an error that names the entity kinds; redact and pseudonymise both redact, as no answer will
restore a placeholder here; structured content that had to be redacted is dropped (the agent gets the text
blocks only). What was found is audited as `guardrail.verdict` (`via: mcp`): entity kinds, actions and
counts, never the text.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import mcp_types as types

from interlock.audit.chain import AuditEvent
from interlock.auth.keys import Principal
from interlock.guardrails.scanner import resolve_overlaps
from interlock.guardrails.service import GuardrailService
from interlock.guardrails.transform import redacted, rewrite
from interlock.mcp.results import error_result


def screen_result(
    g: GuardrailService | None,
    principal: Principal,
    name: str,
    result: types.CallToolResult,
    record: Callable[[AuditEvent], None],
) -> tuple[types.CallToolResult, bool]:
    """The result as the agent may read it, and whether the guardrails blocked it (then it is an error)."""
    if g is None:
        return result, False
    at = [i for i, b in enumerate(result.content) if isinstance(b, types.TextContent)]
    texts = [cast(types.TextContent, result.content[i]).text for i in at]
    structured = result.structured_content
    as_json = json.dumps(structured, ensure_ascii=False) if structured is not None else None
    cleaned, blocking = screen_texts(g, principal, name, [*texts, *([as_json] if as_json is not None else [])], record)
    if blocking:
        message = (
            f"[interlock] the result of '{name}' contains {', '.join(blocking)}, which the guardrail policy blocks."
        )
        return error_result(message), True
    blocks = list(result.content)
    for i, text in zip(at, cleaned, strict=False):
        blocks[i] = cast(types.TextContent, blocks[i]).model_copy(update={"text": text})
    if as_json is not None and cleaned[-1] != as_json:
        structured = None  # redacted: the agent gets the text blocks only
    return result.model_copy(update={"content": blocks, "structured_content": structured}), False


def screen_texts(
    g: GuardrailService,
    principal: Principal,
    name: str,
    texts: list[str],
    record: Callable[[AuditEvent], None],
) -> tuple[list[str], list[str]]:
    """The texts (of a tool result, a prompt or a resource named `name`) as the agent may read them, and the
    entity kinds that block them ([] when none does); what was found is audited."""
    counts: Counter[tuple[str, str]] = Counter()
    untrusted_counts: Counter[str] = Counter()
    out: list[str] = []
    blocked = False
    for text in texts:
        clean, is_blocked = _clean(g, principal, text, counts, untrusted_counts)
        out.append(clean)
        blocked = blocked or is_blocked
    if counts or untrusted_counts:
        record(
            AuditEvent(
                "guardrail.verdict",
                "deny" if blocked else "allow",
                principal.key_id,
                principal.name,
                name[:200],
                "",
                {
                    "via": "mcp",
                    "input": ",".join(f"{e}:{a}:{n}" for (e, a), n in sorted(counts.items())),
                    "untrusted": ",".join(f"{e}:{n}" for e, n in sorted(untrusted_counts.items())),
                },
            )
        )
    return out, sorted({e for (e, a) in counts if a == "block"}) if blocked else []


def _clean(
    g: GuardrailService,
    principal: Principal,
    text: str,
    counts: Counter[tuple[str, str]],
    untrusted_counts: Counter[str],
) -> tuple[str, bool]:
    """`text` with the policy's input actions applied (counted into `counts`), and whether one blocks it."""
    policy = g.book.resolve(
        key_id=principal.key_id,
        agent_id=principal.agent_id,
        team_id=principal.team_id,
        org_id=principal.org_id,
        model=None,
    )
    found = g.scanners.content(policy).scan(text)
    screen = g.scanners.untrusted()
    if screen is not None:
        flagged = screen.scan(text)
        untrusted_counts.update(f.entity for f in flagged)
        found = resolve_overlaps([*found, *flagged])
    blocked = False

    def replace(f: Any, value: str) -> str | None:
        nonlocal blocked
        action = policy.input_action(f.entity)
        if action is None:
            return None
        counts[(f.entity, action)] += 1
        if action == "block":
            blocked = True
        if action in ("redact", "pseudonymise"):
            return redacted(f.entity)
        return None

    return rewrite(text, found, replace), blocked
