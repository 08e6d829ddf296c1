"""Admin endpoints for variants and rollouts, and the config reload (`/admin/variants`, `/admin/reload`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from interlock.admin import variants as services
from interlock.admin.context import audit_action
from interlock.admin.variants import WeightsSet as WeightsSet  # api/openapi.py documents the body from here
from interlock.api.admin import body, caller
from interlock.api.http import JSONResponse, validate
from interlock.api.state import AppState
from interlock.auth.keys import require_admin
from interlock.routing.deployments import ModelRoute
from interlock.store.variant_queries import RolloutState


def _routes(request: Request) -> services.Routes:
    state: AppState = request.app.state.interlock

    def current() -> dict[str, ModelRoute]:
        return state.gateway.routes

    return current


def view(v: services.VariantsView) -> dict[str, Any]:
    """An alias's variants, weights, canary and numbers, as JSON."""
    return {
        "alias": v.alias,
        "variants": v.variants,
        "rollout": asdict(v.rollout) if v.rollout else None,
        "stats": {name: asdict(s) for name, s in v.stats.items()},
    }


async def list_variants(request: Request) -> Response:
    """GET /admin/variants."""
    ctx, actor = await caller(request)
    found = await services.list_variants(ctx, actor, _routes(request))
    return JSONResponse({"object": "list", "data": [view(v) for v in found]})


async def set_weights(request: Request) -> Response:
    """PUT /admin/variants/{alias}: run-time weights for some of its variants."""
    ctx, actor = await caller(request)
    alias = request.path_params["alias"]
    await services.set_weights(ctx, actor, _routes(request), alias, validate(WeightsSet, await body(request)))
    route = _routes(request)()[alias]
    assert route.variants is not None
    return JSONResponse({"alias": alias, "weights": route.variants.weights()})


async def reset_weights(request: Request) -> Response:
    """DELETE /admin/variants/{alias}: back to the config's weights."""
    ctx, actor = await caller(request)
    alias = request.path_params["alias"]
    await services.reset_weights(ctx, actor, _routes(request), alias)
    route = _routes(request)()[alias]
    assert route.variants is not None
    return JSONResponse({"alias": alias, "weights": route.variants.weights()})


def _decide(state: RolloutState) -> Any:
    async def handler(request: Request) -> Response:
        ctx, actor = await caller(request)
        record = await services.decide(ctx, actor, _routes(request), request.path_params["alias"], state)
        return JSONResponse(asdict(record))

    return handler


promote, rollback = _decide("promoted"), _decide("rolled_back")


async def reload(request: Request) -> Response:
    """POST /admin/reload: apply the config file's `[models]` now (400 with the reason if it is refused)."""
    ctx, actor = await caller(request)
    require_admin(actor)
    state: AppState = request.app.state.interlock
    assert state.reloader is not None
    result = await state.reloader.reload()
    await audit_action(
        ctx, actor, "config.reload", state.settings.source, added=",".join(result.added),
        removed=",".join(result.removed), changed=",".join(result.changed),
    )  # fmt: skip
    return JSONResponse({"reloaded": True, **asdict(result)})


ROUTES = [
    Route("/admin/variants", list_variants, methods=["GET"]),
    Route("/admin/variants/{alias}", set_weights, methods=["PUT"]),
    Route("/admin/variants/{alias}", reset_weights, methods=["DELETE"]),
    Route("/admin/variants/{alias}/promote", promote, methods=["POST"]),
    Route("/admin/variants/{alias}/rollback", rollback, methods=["POST"]),
]
