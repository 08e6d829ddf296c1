"""Guardrail policies on orgs, teams, keys and model aliases, for every store (SQL written once, `?` placeholders)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

_COLUMNS = "scope, scope_id, rules, updated_at, updated_by"


@dataclass(frozen=True)
class GuardrailPolicyRecord:
    """One scoped policy: `rules` is its JSON (validated by `guardrails.policy.PolicyRules` when read)."""

    scope: str
    scope_id: str
    rules: str
    updated_at: float
    updated_by: str


class GuardrailQueries:
    """Mixed into a store, which provides `_query` and `_execute` taking `?` placeholders."""

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        raise NotImplementedError

    async def upsert_guardrail_policy(self, r: GuardrailPolicyRecord) -> None:
        """Create or replace the policy of one scope."""
        await asyncio.to_thread(
            self._execute,
            f"INSERT INTO guardrail_policies ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (scope, scope_id) DO UPDATE SET rules = excluded.rules, updated_at = excluded.updated_at, "
            "updated_by = excluded.updated_by",
            (r.scope, r.scope_id, r.rules, r.updated_at, r.updated_by),
        )

    async def delete_guardrail_policy(self, scope: str, scope_id: str) -> bool:
        """Remove the policy of one scope; False if there was none."""
        n = await asyncio.to_thread(
            self._execute, "DELETE FROM guardrail_policies WHERE scope = ? AND scope_id = ?", (scope, scope_id)
        )
        return n > 0

    async def list_guardrail_policies(self) -> list[GuardrailPolicyRecord]:
        """Every scoped policy, by scope and id."""
        rows = await asyncio.to_thread(
            self._query, f"SELECT {_COLUMNS} FROM guardrail_policies ORDER BY scope, scope_id"
        )
        return [GuardrailPolicyRecord(str(s), str(i), str(r), float(t), str(b)) for s, i, r, t, b in rows]
