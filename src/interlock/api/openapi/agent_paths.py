"""Owners, agents, the kill switch, MCP servers, shadow agents, approvals and agent tokens."""

from __future__ import annotations

from typing import Any

from interlock.admin.approvals import ApprovalQuery
from interlock.api.openapi.ops import (
    _INT,
    _STR,
    ADMIN_ERRORS,
    Schema,
    _admin,
    _list_of,
    _obj,
    _op,
    _path,
    _query,
    _ref,
)


def _agent_paths() -> dict[str, Schema]:
    """Owners, agents and the kill switch (halts: the admin or a governance key; resume: governance only)."""
    owner, agent = _path("owner_id"), _path("agent_id")
    paths: dict[str, Schema] = {
        "/admin/owners": {
            "get": _admin("List owners", _list_of(_ref("OwnerRecord"))),
            "post": _admin("Register an owner (a person)", _ref("OwnerRecord"), body="OwnerCreate", status=201),
        },
        "/admin/agents": {
            "get": _admin("List agents", _list_of(_ref("Agent"))),
            "post": _admin("Register an agent and its key (returned once)", _ref("CreatedAgent"), body="AgentCreate",
                           status=201),
        },
        "/admin/agents/{agent_id}": {"get": _admin("An agent, its keys and its halt", _ref("Agent"), params=agent)},
        "/admin/agents/{agent_id}/caps": {
            "put": _admin("Replace an agent's per-run caps and loop thresholds", _ref("Agent"), body="RunCaps",
                          params=agent)
        },
        "/admin/halts": {
            "get": _admin("The halts in force", _list_of(_ref("HaltRecord"))),
            "post": _admin("Halt an agent, an owner's agents, or all", _ref("HaltRecord"), body="HaltSet", status=201),
        },
        "/admin/halts/resume": {
            "post": _admin("Lift a halt (governance key only)", _obj({"resumed": {"const": True}}), body="HaltSet")
        },
        "/admin/mcp/servers": {
            "get": _op("The MCP gateway's upstream servers: tools, pins and poisoning-scan flags",
                       _list_of(_obj({"name": _STR, "connected": {"type": "boolean"}, "tools": {"type": "array"}})),
                       errors=(*ADMIN_ERRORS, 503), tag="admin")
        },
        "/admin/mcp/servers/{name}/approve": {
            "post": _op("Pin an MCP server's tools as listed now (409 when flagged, unless force)",
                        _obj({"server": _STR, "approved": {"type": "array", "items": _STR}}), body="McpApprove",
                        body_required=False, params=_path("name"), errors=(*ADMIN_ERRORS, 409, 503), tag="admin")
        },
    }  # fmt: skip
    for verb, summary in (("suspend", "Suspend"), ("resume", "Reactivate"), ("remove", "Remove")):
        paths[f"/admin/owners/{{owner_id}}/{verb}"] = {
            "post": _admin(f"{summary} an owner (and so every agent they own)", _ref("OwnerRecord"), params=owner)
        }
        paths[f"/admin/agents/{{agent_id}}/{verb}"] = {
            "post": _admin(f"{summary} an agent", _ref("Agent"), params=agent)
        }
    return {**paths, **_approval_paths(), **_shadow_paths()}


def _shadow_paths() -> dict[str, Schema]:
    """Shadow-agent discovery: suspects with their evidence, and adopting a key as an agent."""
    window = [{"name": "since_hours", "in": "query", "required": False,
               "schema": {"type": "integer", "minimum": 1, "maximum": 8784}}]  # fmt: skip
    suspect = _obj({"key": _ref("KeyRecord"), "requests": _INT, "score": _INT, "evidence": {"type": "array"}})
    return {
        "/admin/shadow-agents": {
            "get": _admin("Keys not registered as agents whose traffic looks agentic", _list_of(suspect), params=window)
        },
        "/admin/shadow-agents/{key_id}/adopt": {
            "post": _admin("Register the key's software as an agent (the key becomes its key)", _ref("Agent"),
                           body="AgentCreate", status=201, params=_path("key_id"))
        },
    }  # fmt: skip


def _approval_paths() -> dict[str, Schema]:
    """Approvals (the owner's own key, a governance key or the admin) and agent tokens (minted by owner or admin)."""
    approval, agent, token = _path("approval_id"), _path("agent_id"), _path("agent_id", "token_id")
    decided: dict[str, Any] = {"body": "ApprovalDecision", "body_required": False, "errors": (*ADMIN_ERRORS, 409)}
    minted = {"allOf": [_ref("TokenRecord"), _obj({"token": _STR})]}
    return {
        "/admin/approvals": {
            "get": _admin("Approval requests of held tool calls", _list_of(_ref("ApprovalRecord")),
                          params=_query(ApprovalQuery))
        },
        "/admin/approvals/{approval_id}": {"get": _admin("One approval request", _ref("ApprovalRecord"),
                                                         params=approval)},
        "/admin/approvals/{approval_id}/approve": {
            "post": _op("Approve: the same call goes through once", _ref("ApprovalRecord"), params=approval,
                        tag="admin", **decided)
        },
        "/admin/approvals/{approval_id}/deny": {
            "post": _op("Deny: the call stays refused", _ref("ApprovalRecord"), params=approval, tag="admin",
                        **decided)
        },
        "/admin/agents/{agent_id}/tokens": {
            "get": _admin("An agent's minted tokens (never the tokens)", _list_of(_ref("TokenRecord")), params=agent),
            "post": _admin("Mint a short-lived agent token (returned once)", minted, body="TokenMint",
                           body_required=False, status=201, params=agent),
        },
        "/admin/agents/{agent_id}/tokens/{token_id}/revoke": {
            "post": _admin("Revoke an agent token", _obj({"id": _STR, "revoked": {"const": True}}), params=token)
        },
    }  # fmt: skip
