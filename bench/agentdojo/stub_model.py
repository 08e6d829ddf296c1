#!/usr/bin/env python3
"""The always-hijacked model as an OpenAI-compatible upstream: `interlock serve` routes the agent's steps here.

    python -m bench.agentdojo.stub_model --port 9100      # from the checkout's root

- `PUT /stub/script` sets the case being run (`script.Script`'s JSON: the user task's calls, the injection
  task's calls, the answer); the harness sets it before each case, and cases run one at a time.
- `POST /v1/chat/completions` answers with `script.next_step` for the conversation it is sent (plain JSON,
  or one chunk and `[DONE]` when streamed).
- `GET /stub/health` answers 200; `GET /stub/stats` counts the completions served.

Standard library only, bound to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.agentdojo.script import Script, next_step


class State:
    """The case being run, set by the harness."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.script = Script()
        self.completions = 0


def completion(script: Script, body: dict[str, Any]) -> dict[str, Any]:
    """The chat completion answering `body` under `script`."""
    messages = body.get("messages")
    step = next_step(script, messages if isinstance(messages, list) else [])
    prompt = len(json.dumps(messages)) // 4
    return {
        "id": f"chatcmpl-adj-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model", "stub")),
        "choices": [{"index": 0, "message": step.message(), "finish_reason": step.finish_reason}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": 16, "total_tokens": prompt + 16},
    }


def stream_frames(answer: dict[str, Any]) -> bytes:
    """The same answer as an SSE stream: the whole message in one delta, a finish chunk, usage, `[DONE]`."""
    choice = answer["choices"][0]
    message = dict(choice["message"])
    if "tool_calls" in message:
        message["tool_calls"] = [{**c, "index": i} for i, c in enumerate(message["tool_calls"])]
    base = {k: answer[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": message, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]},
        {**base, "choices": [], "usage": answer["usage"]},
    ]
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def handler(state: State) -> type[BaseHTTPRequestHandler]:
    """The request handler bound to `state`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self) -> dict[str, Any] | None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return None
            return body if isinstance(body, dict) else None

        def do_GET(self) -> None:
            if self.path == "/stub/health":
                self._reply(200, b'{"ok": true}')
            elif self.path == "/stub/stats":
                self._reply(200, json.dumps({"completions": state.completions, "case": state.script.case}).encode())
            else:
                self._reply(404, b'{"error": "not found"}')

        def do_PUT(self) -> None:
            body = self._json()
            if self.path != "/stub/script" or body is None:
                self._reply(400, b'{"error": "PUT /stub/script with a JSON script"}')
                return
            try:
                script = Script.from_json(body)
            except ValueError as exc:
                self._reply(400, json.dumps({"error": str(exc)}).encode())
                return
            with state.lock:
                state.script = script
            self._reply(200, b'{"ok": true}')

        def do_POST(self) -> None:
            body = self._json()
            if not self.path.endswith("/chat/completions") or body is None:
                self._reply(400, b'{"error": {"message": "POST /v1/chat/completions with a JSON body"}}')
                return
            with state.lock:
                script = state.script
                state.completions += 1
            answer = completion(script, body)
            if body.get("stream"):
                self._reply(200, stream_frames(answer), "text/event-stream")
            else:
                self._reply(200, json.dumps(answer).encode())

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(State()))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
