"""`interlock captures list|delete` and `interlock feedback`: what capture stored, erasure requests, and
feedback from the terminal."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from interlock.admin.flywheel import (
    CaptureErase,
    CaptureQuery,
    FeedbackReport,
    erase_captures,
    list_captures,
    record_feedback,
)
from interlock.cli.options import ConfigOption, fail, spec
from interlock.cli.services import call
from interlock.flywheel.examples import text_of

app = typer.Typer(
    help="Captured requests (the config's flywheel.capture): list them, erase them.", no_args_is_help=True
)
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str | None) -> float | None:
    """An epoch second, an ISO date or time (UTC unless it says), or a span back from now (`7d`, `12h`)."""
    if text is None:
        return None
    m = _RELATIVE.match(text.strip())
    if m:
        return time.time() - float(m[1]) * _UNIT[m[2]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--since {text!r}: give an epoch second, an ISO date (2026-12-01) or a span (7d, 12h)", 2) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _prompt(request: str) -> str:
    try:
        messages = orjson.loads(request).get("messages") or []
    except orjson.JSONDecodeError:
        return ""
    users = [text_of(m) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    text = (users[-1] if users else "").replace("\n", " ")
    return text if len(text) <= 60 else text[:59] + "…"


@app.command("list")
def list_command(
    since: Annotated[str | None, typer.Option(help="From this time on (epoch, ISO date, or 7d / 12h back)")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Only this key id")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="Only this model alias")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines with the full request and answer")] = False,
    config: ConfigOption = None,
) -> None:
    """List the newest captures."""
    query = spec(CaptureQuery, since=parse_since(since), key_id=key, alias=alias, limit=limit)
    rows = call(config, lambda ctx, actor: list_captures(ctx, actor, query))
    if as_json:
        for r in rows:
            view = {
                **{f: getattr(r, f) for f in r.__dataclass_fields__},
                "request": orjson.loads(r.request),
                "response": orjson.loads(r.response),
            }
            typer.echo(orjson.dumps(view).decode())
        return
    table = Table(title="Captures")
    table.add_column("request id", no_wrap=True)
    for name in ("time (UTC)", "key", "model", "tokens", "cost $", "ms", "prompt"):
        table.add_column(name)
    for r in rows:
        when = dt.datetime.fromtimestamp(r.ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            r.request_id,
            when,
            r.key_id or "admin",
            r.alias,
            f"{r.prompt_tokens}+{r.completion_tokens}",
            f"{r.cost_micros / 1e6:.6f}",
            f"{r.latency_ms:.0f}",
            _prompt(r.request),
        )
    Console().print(table)


@app.command("delete")
def delete_command(
    request_id: Annotated[str, typer.Option("--request-id", help="The captures of this request")] = "",
    key: Annotated[str, typer.Option("--key", help="Every capture of this key id")] = "",
    subject: Annotated[
        str, typer.Option("--subject", help="Every capture of this end user (the request's `user`)")
    ] = "",
    config: ConfigOption = None,
) -> None:
    """Erase captures (and the feedback on them, and the dataset rows built from them); audited."""
    erase = spec(CaptureErase, request_id=request_id, key_id=key, subject=subject)
    done = call(config, lambda ctx, actor: erase_captures(ctx, actor, erase))
    Console().print(
        f"Erased {done.captures} captures, {done.feedback} pieces of feedback and {done.dataset_rows} dataset rows."
    )


def _value(text: str) -> bool | float:
    low = text.strip().lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    try:
        return float(text)
    except ValueError:
        raise fail(f"VALUE {text!r}: give true/false for a boolean metric or a number", 2) from None


def feedback(
    request_id: Annotated[str, typer.Argument(help="The request's x-request-id (with --run: a run id)")],
    metric: Annotated[str, typer.Argument(help="A metric of [[flywheel.metrics]]")],
    value: Annotated[str, typer.Argument(help="true/false, or a number")],
    run: Annotated[bool, typer.Option("--run", help="REQUEST_ID is an x-interlock-run-id")] = False,
    comment: Annotated[str | None, typer.Option(help="A note")] = None,
    demonstration: Annotated[str | None, typer.Option(help="A corrected answer (preferred in datasets)")] = None,
    config: ConfigOption = None,
) -> None:
    """Give feedback on a request or a run (as the admin); audited."""
    subject = {"run_id": request_id} if run else {"request_id": request_id}
    report = spec(
        FeedbackReport, **subject, metric=metric, value=_value(value), comment=comment, demonstration=demonstration
    )
    r = call(config, lambda ctx, actor: record_feedback(ctx, actor, report))
    Console().print(f"Feedback {r.id}: {r.metric} = {r.value:g} on {r.kind} {r.subject_id}.")
