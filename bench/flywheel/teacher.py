"""The "strong model": an OpenAI-compatible stub that answers every known document correctly.

`python bench/flywheel/teacher.py --port P --answers answers.json` serves `/v1/chat/completions`; the
answer to a request is looked up by its last user message in `answers.json` (text → JSON answer), so it
is always right, as a strong proprietary model would be on this task. Usage is reported with a
4-characters-per-token estimate, as an upstream bills.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def make_app(answers: dict[str, str]) -> Starlette:
    """The stub's ASGI app."""

    async def chat(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        messages = body.get("messages") or []
        question = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
        answer = answers.get(question, "{}")
        prompt = sum(_tokens(str(m.get("content", ""))) + 4 for m in messages)
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "strong-1"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": _tokens(answer),
                    "total_tokens": prompt + _tokens(answer),
                },
            }
        )

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "strong-1", "object": "model"}]})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--answers", type=Path, required=True)
    args = parser.parse_args()
    answers = json.loads(args.answers.read_text())
    uvicorn.run(make_app(answers), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
