"""The input guardrails on an MCP tool result, before the agent reads it.

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
from typing import Any

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
    blocks: list[types.ContentBlock] = []
    counts: Counter[tuple[str, str]] = Counter()
    untrusted_counts: Counter[str] = Counter()
    blocked = False
    for block in result.content:
        if isinstance(block, types.TextContent) and g is not None:
            text, is_blocked = _clean(g, principal, block.text, counts, untrusted_counts)
            blocked = blocked or is_blocked
            block = block.model_copy(update={"text": text})
        blocks.append(block)
    structured = result.structured_content
    if structured is not None and g is not None:
        text = json.dumps(structured, ensure_ascii=False)
        cleaned, is_blocked = _clean(g, principal, text, counts, untrusted_counts)
        blocked = blocked or is_blocked
        if cleaned != text:
            structured = None  # redacted: the agent gets the text blocks only
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
    if blocked:
        kinds = sorted({e for (e, a) in counts if a == "block"})
        message = f"[interlock] the result of '{name}' contains {', '.join(kinds)}, which the guardrail policy blocks."
        return error_result(message), True
    return result.model_copy(update={"content": blocks, "structured_content": structured}), False


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
