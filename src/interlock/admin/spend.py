"""The spend report: the ledger grouped by org, team, key, model, endpoint or day, with the savings summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, field_validator

from interlock.admin.context import AdminContext
from interlock.auth.keys import Principal, require_admin
from interlock.gateway.pricing import savings_summary
from interlock.store.records import LEDGER_ENDPOINTS, SpendGroup, SpendRow


class SpendQuery(BaseModel):
    """What to report (the query of GET /admin/spend)."""

    group: SpendGroup = "model"
    since: float | None = Field(default=None, description="only requests from this epoch second on")
    endpoint: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[a-z_]+(,[a-z_]+)*$",
        description="only rows of these endpoints, comma-separated: chat, completions, embeddings, responses, "
        "messages, mcp (MCP tool calls and reads), shadow (shadow variants' answers)",
    )

    @field_validator("endpoint")
    @classmethod
    def _known_endpoints(cls, value: str | None) -> str | None:
        unknown = sorted(set(value.split(",")) - set(LEDGER_ENDPOINTS)) if value else []
        if unknown:
            raise ValueError(f"unknown endpoint {', '.join(unknown)}; the ledger knows {', '.join(LEDGER_ENDPOINTS)}")
        return value

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The endpoint filter as a tuple (empty: every endpoint)."""
        return tuple(self.endpoint.split(",")) if self.endpoint else ()


@dataclass(frozen=True, slots=True)
class SpendReport:
    """Spend per group, most expensive first, and what the same traffic would have cost at the reference model."""

    group: SpendGroup
    rows: list[SpendRow]
    summary: dict[str, Any]


async def spend_report(ctx: AdminContext, actor: Principal, query: SpendQuery) -> SpendReport:
    """Spend from the ledger, counting every request answered so far."""
    require_admin(actor, write=False)
    await ctx.store.flush()
    rows = await ctx.store.spend(query.group, query.since, query.endpoints)
    return SpendReport(query.group, rows, savings_summary(rows, ctx.settings.governance.reference_model))
