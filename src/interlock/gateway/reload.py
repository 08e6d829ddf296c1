"""Config reload without a restart: `POST /admin/reload` and SIGHUP.

The config file is read again and validated; an invalid one is refused with the reason and the old one
keeps serving. What a reload applies is `[models]`: aliases, deployments, variants and their weights,
routers, rollouts. Deployments whose settings did not change keep their provider (a loaded model stays
loaded, its breaker and latency history stay); new ones are started before anything switches, and a
provider that fails to start refuses the reload. The switch is one assignment of the route table: a request
already routed finishes on the deployments it started on, new requests see the new table. Providers no
longer used are closed once their last in-flight request has finished (at most `drain_s` later).
Other sections (server, store, governance, ...) are read but not applied: the answer names those that
differ, which need a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from interlock.errors import BadRequest
from interlock.gateway.gateway import Gateway
from interlock.gateway.routes import build_routes
from interlock.providers.base import Provider, ProviderContext
from interlock.routing.deployments import Deployment, ModelRoute
from interlock.settings import ConfigError, Settings, load_settings

log = logging.getLogger(__name__)

APPLIED = frozenset({"models", "source", "admin_key"})  # what a reload takes (admin_key: never from the file)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload changed."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    restart_needed: list[str] = field(default_factory=list)  # sections that differ but apply only at start


def _same(old: Deployment, new: Deployment) -> bool:
    return old.name == new.name and old.model == new.model and old.provider.kind == new.provider.kind


class Reloader:
    """Re-reads the config and swaps the gateway's routes (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        gateway: Gateway,
        context: ProviderContext,
        on_swap: Callable[[Settings, dict[str, ModelRoute]], None],
        environ: dict[str, str] | None = None,
        drain_s: float = 300.0,
    ) -> None:
        self.settings = settings
        self._gateway = gateway
        self._context = context
        self._on_swap = on_swap
        self._environ = environ
        self._drain_s = drain_s
        self._lock = asyncio.Lock()
        self._draining: set[asyncio.Task[None]] = set()
        self._retired: list[Deployment] = []  # waiting for their in-flight requests before being closed

    def _load(self) -> Settings:
        if self.settings.source == "<defaults>":
            raise BadRequest(
                "the gateway was started without a config file: there is nothing to reload", code="no_config"
            )
        try:
            return load_settings(self.settings.source, self._environ)
        except ConfigError as exc:
            raise BadRequest(
                f"the new config is refused and the old one keeps serving: {exc}", code="config_invalid"
            ) from None

    async def reload(self) -> ReloadResult:
        """Apply the config file's `[models]` now; refuse (400) an invalid file or a provider that fails to start."""
        async with self._lock:
            new_settings = self._load()
            try:
                fresh = build_routes(new_settings, self._context)
            except (ConfigError, ValueError, TypeError) as exc:
                raise BadRequest(
                    f"the new config is refused and the old one keeps serving: {exc}", code="config_invalid"
                ) from None
            old = self._gateway.routes
            kept = {(d.alias, d.name): d for r in old.values() for d in r.deployments}
            started: list[Provider] = []
            for route in fresh.values():
                for i, dep in enumerate(route.deployments):
                    previous = kept.get((dep.alias, dep.name))
                    if previous is not None and _same(previous, dep):
                        route.deployments[i] = previous  # the same settings: the same provider, state and all
                    else:
                        started.append(dep.provider)
            results = await asyncio.gather(*(p.start() for p in started), return_exceptions=True)
            failed = [(p, r) for p, r in zip(started, results, strict=True) if isinstance(r, BaseException)]
            if failed:
                await asyncio.gather(*(p.close() for p in started), return_exceptions=True)
                p, why = failed[0]
                raise BadRequest(
                    f"the new config is refused and the old one keeps serving: model '{p.alias}' "
                    f"failed to start: {why}",
                    code="config_invalid",
                )
            for alias, route in fresh.items():  # run-time weights carry over to an alias that keeps its variants
                before = old.get(alias)
                if route.variants is not None and before is not None and before.variants is not None:
                    route.variants.set_overrides(before.variants.overrides)
            self._gateway.routes = fresh
            self._gateway.failover.routes = fresh
            now_used = {id(d) for r in fresh.values() for d in r.deployments}
            retired = [d for d in kept.values() if id(d) not in now_used]
            if retired:
                self._retired.extend(retired)
                task = asyncio.get_running_loop().create_task(self._retire(retired), name="interlock-retire")
                self._draining.add(task)
                task.add_done_callback(self._draining.discard)
            restart = sorted(
                name
                for name in type(new_settings).model_fields
                if name not in APPLIED and getattr(new_settings, name) != getattr(self.settings, name)
            )
            old_settings = self.settings
            self.settings = self.settings.model_copy(update={"models": new_settings.models})
            self._on_swap(self.settings, fresh)
            changed = sorted(a for a in fresh if a in old and old_settings.models.get(a) != new_settings.models.get(a))
            result = ReloadResult(sorted(set(fresh) - set(old)), sorted(set(old) - set(fresh)), changed, restart)
            log.warning(
                "config reloaded from %s: added %s, removed %s, changed %s%s",
                new_settings.source, result.added or "-", result.removed or "-", result.changed or "-",
                f"; restart needed for {', '.join(restart)}" if restart else "",
            )  # fmt: skip
            return result

    async def _retire(self, deployments: list[Deployment]) -> None:
        """Close providers no longer routed to, once their in-flight requests are done (or `drain_s` passed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._drain_s
        while any(d.outstanding > 0 for d in deployments) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)  # `outstanding` is a plain counter the failover keeps: polled
        self._retired = [d for d in self._retired if d not in deployments]
        await asyncio.gather(*(d.provider.close() for d in deployments), return_exceptions=True)

    async def close(self) -> None:
        """Close the retired providers now (the server is stopping)."""
        for task in list(self._draining):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        retired, self._retired = self._retired, []
        await asyncio.gather(*(d.provider.close() for d in retired), return_exceptions=True)
