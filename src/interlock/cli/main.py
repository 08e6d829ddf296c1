"""The `interlock` command: serve, chat, keys, orgs, teams, budgets, limits, guardrails, models, spend, audit,
version."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Annotated

import typer

from interlock import __version__
from interlock.cli import (
    agents,
    audit,
    captures,
    chat,
    datasets,
    evals,
    guardrails,
    keys,
    limits,
    mcp,
    models,
    orgs,
    router,
    spend,
    status,
    variants,
)
from interlock.cli import shadow as _shadow  # noqa: F401  (registers `agents shadow` and `agents adopt`)
from interlock.cli.approvals import app as approvals
from interlock.cli.options import ConfigOption, fail, settings_or_exit
from interlock.cli.tune import tune
from interlock.settings import ConfigError

app = typer.Typer(help="Interlock: a self-hosted AI gateway.", no_args_is_help=True, add_completion=False)
app.add_typer(keys.app, name="keys")
app.add_typer(agents.agents, name="agents")  # with `shadow` and `adopt` (cli.shadow)
app.add_typer(agents.owners, name="owners")
app.add_typer(agents.halt, name="halt")
app.add_typer(agents.resume, name="resume")
app.add_typer(approvals, name="approvals")
app.add_typer(variants.app, name="variants")
app.add_typer(orgs.orgs, name="orgs")
app.add_typer(orgs.teams, name="teams")
app.add_typer(limits.budgets, name="budgets")
app.add_typer(limits.limits, name="limits")
app.add_typer(guardrails.app, name="guardrails")
app.add_typer(mcp.app, name="mcp")
app.add_typer(audit.app, name="audit")
app.add_typer(router.app, name="router")
app.command("chat")(chat.chat)
app.command("models")(models.models)
app.command("spend")(spend.spend)
app.command("status")(status.status)
app.add_typer(captures.app, name="captures")
app.command("feedback")(captures.feedback)
app.add_typer(datasets.app, name="datasets")
app.command("eval")(evals.eval_command)
app.add_typer(evals.app, name="evals")
app.command("tune")(tune)


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default from config: 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default from config: 8080)")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request line")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Run the gateway."""
    # numpy's OpenBLAS would spread each small embedding matmul over every core, fighting the
    # llama.cpp threads and the event loop; one BLAS thread is faster here (measured in the notes).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import uvicorn

    from interlock.app import create_app
    from interlock.server import CoalescingHttpToolsProtocol, GatewayServer, tune_gc

    tune_gc()
    settings = settings_or_exit(config)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        application = create_app(settings)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    server = GatewayServer(
        uvicorn.Config(
            application,
            host=host or settings.server.host,
            port=settings.server.port if port is None else port,
            loop="uvloop",
            http=CoalescingHttpToolsProtocol,
            access_log=access_log,
            proxy_headers=False,  # nothing reads the client address; saves a wrapper on every send
            log_level=log_level,
            timeout_graceful_shutdown=10,
        )
    )
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: Ctrl-C is a clean stop
        server.run()
    if not server.started:  # the lifespan failed (uvicorn has logged why); uvicorn.run exits 3 so too
        raise typer.Exit(3)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"interlock {__version__}")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="interlock")


if __name__ == "__main__":
    main()
