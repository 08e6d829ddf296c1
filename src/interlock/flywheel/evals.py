"""Evals: a dataset version's eval split run through the gateway's own API, scored, summarised and stored.

Each eval example's prompt (every message but the last, and its tools) goes to each model alias as an
ordinary `POST /v1/chat/completions` with temperature 0, through an HTTP client the caller authenticated,
so the requests are routed, governed and priced like any other and their cost lands in the ledger. At
most `concurrency` requests are in flight. A failed request scores 0 on every check (and is counted).

An optional judge alias grades each answer against the reference (`judge` check: PASS scores 1). Every
check's mean gets a bootstrap 95% interval; with two models, the paired difference (second minus first)
gets one too, so "B is better than A" is a claim with an interval, not a pair of point estimates.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import orjson

from interlock.flywheel.checks import Answer, Check
from interlock.flywheel.examples import prompt_of, text_of
from interlock.flywheel.stats import bootstrap, paired_difference
from interlock.store.flywheel_queries import DatasetRecord, EvalRecord, EvalResult, FlywheelStore

JUDGE = "judge"
_JUDGE_SYSTEM = (
    "You grade a candidate answer against a reference answer. Reply with exactly one word: PASS if the "
    "candidate is correct and consistent with the reference, FAIL otherwise."
)


class EvalError(ValueError):
    """An eval that cannot run as asked."""


@dataclass(frozen=True, slots=True)
class EvalPlan:
    """What to run: a dataset version, one or two model aliases, the checks, an optional judge alias."""

    dataset: DatasetRecord
    models: tuple[str, ...]
    checks: tuple[Check, ...]
    judge: str | None = None
    concurrency: int = 4
    max_tokens: int | None = None
    seed: int = 0


@dataclass(frozen=True, slots=True)
class _Item:
    position: int
    prompt: dict[str, Any]
    expected: Answer


def _error_text(r: httpx.Response) -> str:
    try:
        message = r.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = r.text[:200]
    return f"HTTP {r.status_code}: {message}"[:500]


async def _ask(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[dict[str, Any] | None, str, float]:
    """(the assistant message, or None; the error; latency in ms)."""
    started = time.perf_counter()
    try:
        r = await client.post("/v1/chat/completions", json=body)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500], (time.perf_counter() - started) * 1000
    latency = (time.perf_counter() - started) * 1000
    if r.status_code != 200:
        return None, _error_text(r), latency
    try:
        return dict(r.json()["choices"][0]["message"]), "", latency
    except (ValueError, KeyError, IndexError, TypeError):
        return None, "the answer is not a chat completion", latency


async def _judge(client: httpx.AsyncClient, alias: str, item: _Item, answer: Answer) -> float:
    question = "\n\n".join(f"{m.get('role')}: {text_of(m)}" for m in item.prompt["messages"])
    reference = item.expected.content or json.dumps(list(item.expected.tool_calls))
    candidate = answer.content or json.dumps(list(answer.tool_calls))
    body = {
        "model": alias,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": _JUDGE_SYSTEM},
            {
                "role": "user",
                "content": f"Conversation:\n{question}\n\nReference answer:\n{reference}\n\n"
                f"Candidate answer:\n{candidate}",
            },
        ],
    }
    message, _, _ = await _ask(client, body)
    verdict = (message or {}).get("content") or ""
    return 1.0 if verdict.strip().upper().startswith("PASS") else 0.0


def items_of(rows: list[tuple[int, str]]) -> list[_Item]:
    """Eval items from (position, example JSON)."""
    items = []
    for position, raw in rows:
        example = orjson.loads(raw)
        items.append(_Item(position, prompt_of(example), Answer.of(example["messages"][-1])))
    return items


async def run(
    store: FlywheelStore,
    plan: EvalPlan,
    client: httpx.AsyncClient,
    actor: str,
    progress: Callable[[int], None] = lambda n: None,
) -> tuple[EvalRecord, list[EvalResult]]:
    """Run, score and store the eval (see the module docstring)."""
    if not 1 <= len(plan.models) <= 2:
        raise EvalError("give one --model, or two to compare them side by side")
    if not plan.checks and plan.judge is None:
        raise EvalError("give at least one --check (or a --judge)")
    d = plan.dataset
    rows = await store.dataset_rows(d.name, d.version, "eval")
    if not rows:
        raise EvalError(f"dataset {d.name}@{d.version} has no eval split (build it with --eval-fraction above 0)")
    items = items_of([(r.position, r.example) for r in rows])
    limit = asyncio.Semaphore(plan.concurrency)
    eval_id = "eval_" + uuid.uuid4().hex[:16]

    async def one(model: str, item: _Item) -> EvalResult:
        body: dict[str, Any] = {"model": model, "temperature": 0, **item.prompt}
        if plan.max_tokens is not None:
            body["max_tokens"] = plan.max_tokens
        async with limit:
            message, error, latency = await _ask(client, body)
            scores: dict[str, float] = {c.name: 0.0 for c in plan.checks}
            answer = Answer.of(message) if message is not None else Answer("")
            if message is not None:
                scores = {c.name: c.score(answer, item.expected) for c in plan.checks}
                if plan.judge is not None:
                    scores[JUDGE] = await _judge(client, plan.judge, item, answer)
            elif plan.judge is not None:
                scores[JUDGE] = 0.0
        progress(1)
        shown = (
            answer.content
            if not answer.tool_calls
            else json.dumps({"content": answer.content, "tool_calls": list(answer.tool_calls)})
        )
        return EvalResult(eval_id, model, item.position, shown, json.dumps(scores), error, latency)

    results = list(await asyncio.gather(*(one(m, it) for m in plan.models for it in items)))
    names = [c.name for c in plan.checks] + ([JUDGE] if plan.judge is not None else [])
    summary = summarise(plan.models, names, results, plan.seed)
    record = EvalRecord(
        eval_id,
        d.name,
        d.version,
        time.time(),
        actor,
        json.dumps(list(plan.models)),
        json.dumps(names),
        len(items),
        json.dumps(summary),
    )
    await store.insert_eval(record, results)
    return record, results


def summarise(models: tuple[str, ...], checks: list[str], results: list[EvalResult], seed: int = 0) -> dict[str, Any]:
    """Per model and check: the mean score and its bootstrap 95% interval; with two models, their difference."""
    by_model: dict[str, list[EvalResult]] = {
        m: sorted((r for r in results if r.model == m), key=lambda r: r.position) for m in models
    }
    scores = {
        m: {c: [float(json.loads(r.scores).get(c, 0.0)) for r in rs] for c in checks} for m, rs in by_model.items()
    }
    out: dict[str, Any] = {"models": {}}
    for m, rs in by_model.items():
        out["models"][m] = {
            "checks": {c: asdict(bootstrap(scores[m][c], seed=seed)) for c in checks},
            "errors": sum(1 for r in rs if r.error),
            "latency_ms_p50": statistics.median(r.latency_ms for r in rs) if rs else None,
        }
    if len(models) == 2:
        a, b = models
        out["difference"] = {c: asdict(paired_difference(scores[a][c], scores[b][c], seed=seed)) for c in checks}
    return out
