"""The admin API: keys, spend, orgs, teams, budgets, limits, guardrails; variants and the config reload."""

from __future__ import annotations

from interlock.admin import (
    BudgetRef,
    GuardrailRef,
    RateLimitRef,
    RoiQuery,
    SpendQuery,
)
from interlock.api.openapi.ops import (
    _NUM,
    _OBJ,
    _STR,
    Schema,
    _admin,
    _list_of,
    _obj,
    _path,
    _query,
    _ref,
)


def _admin_paths() -> dict[str, Schema]:
    done = {"deleted": {"const": True}}
    key_id = _path("key_id")
    return {
        "/admin/keys": {
            "get": _admin("List virtual keys", _list_of(_ref("Key"))),
            "post": _admin("Create a key (returned once)", _ref("CreatedKey"), body="KeyCreate", status=201),
        },
        "/admin/keys/{key_id}/revoke": {
            "post": _admin("Revoke a key", _obj({"id": _STR, "revoked": {"const": True}}), params=key_id)
        },
        "/admin/keys/{key_id}/suspend": {
            "post": _admin(
                "Suspend a key (reversible)",
                _obj({"id": _STR, "suspended": {"const": True}}),
                body="KeySuspend",
                body_required=False,
                params=key_id,
            )
        },
        "/admin/keys/{key_id}/resume": {
            "post": _admin("Lift a suspension", _obj({"id": _STR, "suspended": {"const": False}}), params=key_id)
        },
        "/admin/spend": {
            "get": _admin("Spend by org, team, key, model, endpoint or day", _ref("Spend"), params=_query(SpendQuery))
        },
        "/admin/roi": {
            "get": _admin(
                "Outcomes, AI cost per completed outcome, labour replaced and ROI",
                _obj(
                    {
                        "object": {"const": "list"},
                        "group": _STR,
                        "data": {"type": "array", "items": _ref("RoiRow")},
                        "total": _ref("RoiRow"),
                        "summary": _OBJ,
                    }
                ),
                params=_query(RoiQuery),
            )
        },
        "/admin/orgs": {
            "get": _admin("List organisations", _list_of(_ref("OrgRecord"))),
            "post": _admin("Create an organisation", _ref("OrgRecord"), body="OrgCreate", status=201),
        },
        "/admin/teams": {
            "get": _admin("List teams", _list_of(_ref("TeamRecord"))),
            "post": _admin("Create a team", _ref("TeamRecord"), body="TeamCreate", status=201),
        },
        "/admin/budgets": {
            "get": _admin("Budgets with spend and reservations", _list_of(_ref("BudgetStatus"))),
            "put": _admin("Set a budget", _ref("BudgetRecord"), body="BudgetSet"),
            "delete": _admin("Remove a budget", _obj(done), params=_query(BudgetRef)),
        },
        "/admin/rate-limits": {
            "get": _admin("List rate limits", _list_of(_ref("RateLimitRecord"))),
            "put": _admin("Set a rate limit", _ref("RateLimitRecord"), body="RateLimitSet"),
            "delete": _admin("Remove a rate limit", _obj(done), params=_query(RateLimitRef)),
        },
        "/admin/guardrails": {
            "get": _admin("List the scoped guardrail policies", _list_of(_ref("GuardrailPolicy"))),
            "put": _admin("Set the guardrail policy of a scope", _ref("GuardrailPolicy"), body="GuardrailSet"),
            "delete": _admin("Remove a scoped guardrail policy", _obj(done), params=_query(GuardrailRef)),
        },
    }


def _variant_paths() -> dict[str, Schema]:
    """Variants and canaries of an alias, and the config reload."""
    alias = _path("alias")
    weights = _obj({"alias": _STR, "weights": {"type": "object", "additionalProperties": _NUM}})
    listed = _obj({"alias": _STR, "variants": {"type": "array"}, "rollout": {"type": ["object", "null"]}})
    reloaded = _obj({"reloaded": {"const": True}, "added": {"type": "array", "items": _STR},
                     "removed": {"type": "array", "items": _STR}, "changed": {"type": "array", "items": _STR},
                     "restart_needed": {"type": "array", "items": _STR}})  # fmt: skip
    paths: dict[str, Schema] = {
        "/admin/variants": {"get": _admin("Aliases with variants: weights, canary and its numbers", _list_of(listed))},
        "/admin/variants/{alias}": {
            "put": _admin("Set run-time weights of some variants", weights, body="WeightsSet", params=alias),
            "delete": _admin("Back to the config's weights", weights, params=alias),
        },
        "/admin/reload": {"post": _admin("Apply the config file's [models] now (400: refused, old one serves)",
                                         reloaded)},
    }  # fmt: skip
    for verb, summary in (("promote", "Promote"), ("rollback", "Roll back")):
        paths[f"/admin/variants/{{alias}}/{verb}"] = {
            "post": _admin(f"{summary} the alias's canary now", _ref("RolloutRecord"), params=alias)
        }
    return paths
