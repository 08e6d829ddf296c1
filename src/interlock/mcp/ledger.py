"""An MCP call's ledger row: every tools/call, prompts/get and resources/read an agent makes through `/mcp`
settles as one row.

The row sits beside the agent's model requests (`endpoint` "mcp"), so the ledger, the spend reports and
the dashboard's explorer show an agent's whole run, its tool calls included, and a run whose counters
were lost is re-seeded with its MCP steps. Its fields:

- `alias`: the tool or prompt as the agent named it (`<server>__<name>`), or the resource's gateway URI;
  `upstream_model`: the upstream's own name or URI for it; `provider` "mcp"; `deployment` `mcp:<server>`
  once the call was sent upstream, "" when Interlock refused it (so, like a model request that never
  reached a model, it is not a step when a run is re-seeded);
- `status`: 200 for a call answered by the upstream (an error result it returned, or a result the input
  guardrails blocked, is still 200, with `error` saying so); 403 for a call refused by the tool policy,
  held for approval, or to an unapproved or changed tool; 404 for an unknown tool; 502 or 504 when the
  upstream failed or did not answer; a stopped run's status (403 for a cap, 503 when its state cannot be
  read); 499 when the client went away mid-call. (While the ledger is full, calls are refused before
  they start, `ledger_unavailable`, and leave no row: there is nowhere to write one.)
- `error`: `<code>: <reason>` for every refusal or failure (never argument values);
- no tokens and no cost: an MCP call buys no model time; latency is the whole call's, policy included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import mcp_types as types

from interlock.auth.keys import Principal
from interlock.mcp.results import error_result
from interlock.store.records import UsageRecord, new_request_id

ENDPOINT = "mcp"


def run_key(run_id: str, session_id: str) -> str:
    """The run an MCP request belongs to: its `x-interlock-run-id`, else `mcp_<session id>` for a stateful
    (handshake-era) session, else `mcp` (one run per agent for its header-less, session-less requests)."""
    return run_id or (f"mcp_{session_id}" if session_id else "mcp")


@dataclass(slots=True)
class Settled:
    """What one call came to, filled in as it goes; `row` makes its ledger row."""

    run_id: str
    status: int = 200
    error: str | None = None
    server: str = ""
    upstream_tool: str = ""
    sent: bool = False  # the call went to the upstream server
    ts: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)

    def refuse(self, status: int, error: str, text: str) -> types.CallToolResult:
        """Note a refusal or failure (`error`: code and reason) and the error result the agent reads (`text`)."""
        self.status, self.error = status, error[:500]
        return error_result(text)

    def row(self, p: Principal, tool: str) -> UsageRecord:
        """The call's ledger row (see the module docstring)."""
        return UsageRecord(
            request_id=new_request_id(),
            ts=self.ts,
            key_id=p.key_id,
            endpoint=ENDPOINT,
            alias=tool[:200],
            provider="mcp",
            upstream_model=self.upstream_tool[:200],
            stream=False,
            prompt_tokens=0,
            completion_tokens=0,
            usage_source="none",
            cost_micros=0,
            price_version="",
            latency_ms=(time.perf_counter() - self.started) * 1000,
            ttft_ms=None,
            status=self.status,
            error=None if self.error is None else self.error[:500],
            deployment=f"mcp:{self.server}" if self.sent else "",
            team_id=p.team_id,
            org_id=p.org_id,
            run_id=self.run_id,
            agent_id=p.agent_id or "",
            owner_id=p.owner_id or "",
        )
