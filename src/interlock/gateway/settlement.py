"""Settlement: what a request used and cost, counted once when it ends, as an `Outcome`.

The gateway builds the outcome in its one `finally`; the `finish` hooks (the ledger row, the budget
settlement, the denial audit, ...) read it. Token counts come from the provider's usage report when
it sent one, else from the deployment's own tokenizer, else from the embedded model's, else the upper
bound of one token per UTF-8 byte (documented in the README).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from interlock.errors import GatewayError
from interlock.gateway.context import RequestContext
from interlock.plugins.hooks import Outcome
from interlock.routing.deployments import Deployment
from interlock.types import ChatRequest, ChatResponse, Delta, Usage, reasoning_text

CLIENT_CLOSED = 499  # nginx's code for "client closed the connection"


class TokenCounter:
    """Tokens in a text by the deployment's tokenizer, else the embedded model's, else an estimate."""

    def __init__(self, fallback: tuple[str, Callable[[str], int | None]] | None = None) -> None:
        self._fallback = fallback

    def _tokenized(self, dep: Deployment, text: str) -> tuple[int, str] | None:
        n = dep.provider.count_tokens(text)
        if n is not None:
            return n, f"tokenizer:{dep.alias}"
        if self._fallback is not None:
            n = self._fallback[1](text)
            if n is not None:
                return n, f"tokenizer:{self._fallback[0]}"
        return None

    def count(self, dep: Deployment, text: str) -> tuple[int, str]:
        """Tokens in `text` to charge: a tokenizer's count, else an upper bound (one token per UTF-8 byte:
        no byte-level tokenizer makes more), never an average that could under-charge."""
        return self._tokenized(dep, text) or (len(text.encode()), "bound:utf8-bytes")

    def estimate(self, dep: Deployment, text: str) -> int:
        """Tokens in `text` as a tokenizer counts them, else a typical four characters per token: for the
        stream backstop and TPM admission, which must not cut or refuse ordinary answers."""
        found = self._tokenized(dep, text)
        return found[0] if found else (len(text) + 3) // 4

    def usage(
        self, dep: Deployment, request: ChatRequest, reported: Usage | None, completion: str
    ) -> tuple[Usage, str]:
        """The provider's usage report, or our own count of the same tokens."""
        if reported is not None and (reported.prompt_tokens or reported.completion_tokens):
            return reported, "provider"
        prompt, source = self.count(dep, "\n".join(m.text() for m in request.messages))
        done = self.count(dep, completion)[0] if completion else 0
        return Usage.of(prompt, done), source

    def answer_usage(self, dep: Deployment, request: ChatRequest, response: ChatResponse) -> tuple[Usage, str]:
        """`usage` of a complete answer (its text is gathered only when the provider reported no usage)."""
        reported = response.usage
        if reported is not None and (reported.prompt_tokens or reported.completion_tokens):
            return reported, "provider"
        return self.usage(dep, request, reported, response_text(response))


def outcome(
    ctx: RequestContext,
    usage: Usage,
    source: str,
    *,
    status: int,
    error: GatewayError | None = None,
    cached: bool = False,
) -> Outcome:
    """How the request ended, priced at the deployment that served it (a cache hit costs nothing)."""
    dep = None if cached else ctx.deployment
    cost = dep.price.cost_micros(usage.prompt_tokens, usage.completion_tokens) if dep else 0
    return Outcome(
        status=status,
        usage=usage,
        usage_source=source,
        cost_micros=cost,
        error=error,
        deployment=dep.name if dep else "",
        provider=dep.provider.kind if dep else ("cache" if cached else ""),
        attempts=ctx.attempts,
        cached=cached,
        ttft_ms=ctx.ttft_ms,
        latency_ms=(time.perf_counter() - ctx.started) * 1000,
    )


def delta_text(delta: Delta) -> str:
    """The generated text in a streamed delta, reasoning included."""
    return (delta.content or "") + (reasoning_text(delta.model_extra) if delta.model_extra else "")


def response_text(response: ChatResponse) -> str:
    """The generated text of an answer (reasoning and tool-call arguments included), for counting tokens."""
    parts: list[str] = []
    for choice in response.choices:
        if choice.message.model_extra:
            parts.append(reasoning_text(choice.message.model_extra))
        parts.append(choice.message.content or "")
        parts.extend(c.function.arguments for c in choice.message.tool_calls or ())
    return "".join(parts)
