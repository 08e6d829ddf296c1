"""Agents: the registry with owners, recent runs from the ledger, the approvals queue and the kill switch.

The one page a governance key's session may see. Everyone signed in reads it; halting takes the admin key
or a governance key, lifting a halt a governance key alone, and deciding an approval the admin or a
governance key: the `interlock.admin` services check each role again and audit each change.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from interlock.admin import agents as services
from interlock.admin import approvals
from interlock.admin.agents import HaltSet
from interlock.admin.approvals import ApprovalDecision, ApprovalQuery
from interlock.errors import NotFound
from interlock.store.agent_queries import AgentRecord, HaltRecord, OwnerRecord
from interlock.store.approval_queries import ApprovalRecord
from interlock.store.ledger_queries import RunSummary
from interlock.ui.web import View, acting, parse, render, viewer

RUNS = 50  # newest runs listed
DECIDED = 20  # recently decided approvals listed


@dataclass(frozen=True, slots=True)
class AgentRow:
    """An agent as the page lists it: with its owner and the halt that stops it, if any."""

    agent: AgentRecord
    owner: OwnerRecord | None
    halt: HaltRecord | None
    expired: bool


def halt_of(agent: AgentRecord, halts: Mapping[tuple[str, str], HaltRecord]) -> HaltRecord | None:
    """The halt that covers `agent`: its own, its owner's, or the one on every agent (as `auth.agents`)."""
    for scope in (("agent", agent.id), ("owner", agent.owner_id), ("all", "")):
        if scope in halts:
            return halts[scope]
    return None


async def _page(request: Request, view: View, **notice: Any) -> Response:
    # Read from the store: a governance key may not read the admin API's registry, yet it halts from here.
    store = view.ctx.store
    await store.flush()
    owners = {o.id: o for o in await store.list_owners()}
    halts: dict[tuple[str, str], HaltRecord] = {
        (h.scope, h.scope_id): h for h in await services.list_halts(view.ctx, view.principal)
    }
    now = time.time()
    rows = [
        AgentRow(a, owners.get(a.owner_id), halt_of(a, halts), a.expires_at is not None and a.expires_at <= now)
        for a in await store.list_agents()
    ]
    runs: list[RunSummary] = await store.ledger_runs(RUNS)
    queue = await approvals.list_approvals(view.ctx, view.principal, ApprovalQuery(status="pending"))
    recent: list[ApprovalRecord] = [
        r for r in await approvals.list_approvals(view.ctx, view.principal, ApprovalQuery(limit=100))
        if r.status != "pending"
    ][:DECIDED]  # fmt: skip
    names = {a.agent.id: a.agent.name for a in rows}
    return render(
        request, "agents.html", view, owners=list(owners.values()), agents=rows, halts=list(halts.values()),
        runs=runs, queue=queue, recent=recent, names=names, owner_names={o.id: o.name for o in owners.values()},
        may_halt=view.role in ("admin", "governance"), may_resume=view.role == "governance",
        may_decide=view.role in ("admin", "governance"), **notice,
    )  # fmt: skip


async def agents_page(request: Request) -> Response:
    """GET /ui/agents."""
    return await _page(request, await viewer(request, governance=True))


async def halt(request: Request) -> Response:
    """POST /ui/agents/halt: scope (agent, owner or all), id and reason."""
    view, form = await acting(request, governance=True)
    record = await services.halt(view.ctx, view.principal, parse(HaltSet, form))
    what = "every agent" if record.scope == "all" else f"{record.scope} {record.scope_id}"
    return await _page(request, view, notice=f"halted {what}")


async def resume(request: Request) -> Response:
    """POST /ui/agents/resume: lift a halt (a governance key only)."""
    view, form = await acting(request, governance=True)
    spec = parse(HaltSet, form)
    await services.resume(view.ctx, view.principal, spec)
    what = "every agent" if spec.scope == "all" else f"{spec.scope} {spec.id}"
    return await _page(request, view, notice=f"halt on {what} lifted")


async def decide(request: Request) -> Response:
    """POST /ui/approvals/{approval_id}/{approve|deny}, with an optional note."""
    view, form = await acting(request, governance=True)
    approval_id, action = request.path_params["approval_id"], request.path_params["action"]
    if action not in ("approve", "deny"):
        raise NotFound(f"no approval action '{action}' (approve or deny)", code="unknown_route")
    record = await approvals.decide(
        view.ctx, view.principal, approval_id, action == "approve", parse(ApprovalDecision, form)
    )
    return await _page(request, view, notice=f"approval {record.id}: {record.status}")
