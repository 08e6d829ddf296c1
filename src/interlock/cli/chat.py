"""`interlock chat`: talk to a running gateway, one-shot or interactively, with streamed output."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import httpx
import orjson
import typer
from rich.console import Console

from interlock.settings import DEFAULT_CHAT_ALIAS


def _api_key(explicit: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get("INTERLOCK_API_KEY"):
        return os.environ["INTERLOCK_API_KEY"]
    from interlock.auth.keys import load_admin_key

    home = Path(os.environ.get("INTERLOCK_HOME", "~/.interlock")).expanduser()
    return load_admin_key(home, os.environ.get("INTERLOCK_ADMIN_KEY"))


def _stream(
    client: httpx.Client,
    url: str,
    key: str,
    model: str,
    messages: list[dict[str, str]],
    max_tokens: int | None,
) -> str:
    body: dict[str, object] = {"model": model, "messages": messages, "stream": True}
    if max_tokens:
        body["max_tokens"] = max_tokens
    out: list[str] = []
    with client.stream(
        "POST", f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    ) as resp:
        if resp.status_code != 200:
            resp.read()
            message = resp.json().get("error", {}).get("message", resp.text) if resp.text else resp.reason_phrase
            raise RuntimeError(f"{resp.status_code}: {message}")
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = orjson.loads(line[6:])
            if "error" in event:
                raise RuntimeError(f"stream failed: {event['error'].get('message')}")
            for choice in event.get("choices", []):
                piece = (choice.get("delta") or {}).get("content") or ""
                out.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
    sys.stdout.write("\n")
    return "".join(out)


def chat(
    prompt: Annotated[str | None, typer.Argument(help="Ask once and exit; omit for an interactive session")] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Model alias")] = DEFAULT_CHAT_ALIAS,
    url: Annotated[str, typer.Option(help="Gateway URL")] = "http://127.0.0.1:8080",
    key: Annotated[str | None, typer.Option(help="API key (default: $INTERLOCK_API_KEY, else the admin key)")] = None,
    system: Annotated[str | None, typer.Option(help="System prompt")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Limit the answer's length")] = None,
) -> None:
    """Chat with a model through a running gateway."""
    console = Console(stderr=True)
    token = _api_key(key)
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    with httpx.Client(timeout=httpx.Timeout(600, connect=5)) as client:
        try:
            if prompt is not None:
                messages.append({"role": "user", "content": prompt})
                _stream(client, url.rstrip("/"), token, model, messages, max_tokens)
                return
            console.print(f"Chatting with [bold]{model}[/bold] at {url}. Empty line or Ctrl-D to quit.")
            while True:
                try:
                    line = input("> ")
                except EOFError:
                    break
                if not line.strip():
                    break
                messages.append({"role": "user", "content": line})
                answer = _stream(client, url.rstrip("/"), token, model, messages, max_tokens)
                messages.append({"role": "assistant", "content": answer})
        except httpx.ConnectError:
            console.print(no_gateway(url), style="red", highlight=False, markup=False)
            raise typer.Exit(1) from None
        except (httpx.HTTPError, RuntimeError) as exc:
            console.print(str(exc), style="red", highlight=False, markup=False)
            raise typer.Exit(1) from None


def no_gateway(url: str) -> str:
    """What to say when nothing answers at `url`."""
    return f"no Interlock gateway answers at {url.rstrip('/')}: start one with `make run` or `interlock serve`"
