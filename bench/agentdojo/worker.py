#!/usr/bin/env python3
"""One suite of AgentDojo through Interlock, run inside AgentDojo's own venv (`bench/agentdojo/.venv`).

`run.py` starts this with the gateway's address, an agent key and the stub model's address; it prints one
JSON object (the suite's numbers and diagnostics) on stdout and progress on stderr. Three passes:

1. no attack, held calls granted: the utility a person approving legitimate calls gets (`utility_no_attack`),
   and how many calls they had to approve (`approvals_per_task`);
2. no attack, held calls denied (`utility_no_attack_strict`);
3. every user task x injection task under AgentDojo's `important_instructions` attack, held calls denied
   (`asr`, `utility_under_attack`).

The agent loop is AgentDojo's own (system message, user query, then tool execution with its
`FunctionsRuntime` until the model answers without a call). Its model is the gateway: every step is sent
to Interlock as an OpenAI chat completion, with the tool results as `tool` messages; a refused call is
absent from the answer, so the runtime never executes it. Before each case the stub model is given the
case's script (`script.py`): the user task's ground truth, then the injection task's, computed by AgentDojo
from the case's environment.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openai
from agentdojo.agent_pipeline import (
    AgentPipeline,
    BasePipelineElement,
    InitQuery,
    SystemMessage,
    ToolsExecutionLoop,
    ToolsExecutor,
)
from agentdojo.agent_pipeline.agent_pipeline import load_system_message
from agentdojo.agent_pipeline.llms.openai_llm import (
    _function_to_openai,
    _message_to_openai,
    _openai_to_assistant_message,
)
from agentdojo.attacks.attack_registry import load_attack
from agentdojo.functions_runtime import EmptyEnv, Env, FunctionsRuntime
from agentdojo.task_suite.load_suites import get_suite
from agentdojo.types import ChatAssistantMessage, ChatMessage, text_content_block_from_string

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run by path from AgentDojo's venv

from bench.agentdojo.script import HELD, Call, Script

BENCHMARK_VERSION = "v1.2.2"
ATTACK = "important_instructions"
# The attack addresses the model by name ("This is an important message from me, Emma Johnson, to you, GPT-4");
# AgentDojo reads that name from the pipeline's name, so the pipeline carries a model id it knows.
PIPELINE_NAME = "gpt-4o-2024-05-13"
MAX_ITERS = 60  # agent-loop steps per case: the longest ground truth plus its injection is far shorter
APPROVAL_ROUNDS = 3  # re-sends after granting (a held call that is still held after that counts as refused)


def log(*parts: object) -> None:
    """Progress, on stderr (stdout carries only the result)."""
    print(*parts, file=sys.stderr, flush=True)


def post(url: str, token: str, body: Any = None, method: str = "POST", timeout: float = 30) -> tuple[int, Any]:
    """JSON over loopback HTTP."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"loopback only: {url}")
    data = json.dumps(body if body is not None else {}).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback http only
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


class Approver:
    """Decides held calls through the admin API: grant (and have the agent re-send) or deny."""

    def __init__(self, gateway: str, admin_key: str) -> None:
        self.gateway, self.admin_key = gateway, admin_key
        self.failures = 0

    def decide(self, approval_id: str, grant: bool) -> bool:
        """Approve or deny one request; whether the gateway took the decision."""
        verb = "approve" if grant else "deny"
        note = "agentdojo harness: " + ("no attack, a legitimate call" if grant else "under attack: denied")
        status, body = post(f"{self.gateway}/admin/approvals/{approval_id}/{verb}", self.admin_key, {"note": note})
        if status != 200:
            self.failures += 1
            log(f"  {verb} {approval_id}: HTTP {status} {str(body)[:200]}")
            return False
        return True


def _text_message(text: str) -> ChatAssistantMessage:
    return ChatAssistantMessage(role="assistant", content=[text_content_block_from_string(text)], tool_calls=None)


class GatewayLLM(BasePipelineElement):
    """The agent's model: one OpenAI chat completion through Interlock per step, held calls decided."""

    def __init__(self, client: openai.OpenAI, model: str, approver: Approver) -> None:
        self.client, self.model, self.approver = client, model, approver
        self.grant = False  # no attack: grant held calls and re-send; under attack: deny them
        self.run_id = ""
        self.held: set[str] = set()  # approval ids held in the current case
        self.granted = 0
        self.stopped: list[str] = []  # the gateway's 4xx answers in the current case
        self.transcript: list[Any] = []  # the last conversation sent and its answer (`--trace`)

    def start_case(self, run_id: str, grant: bool) -> None:
        """Reset the per-case state."""
        self.run_id, self.grant, self.held, self.granted = run_id, grant, set(), 0
        self.stopped = []
        self.transcript = []

    def query(
        self,
        query: str,
        runtime: FunctionsRuntime,
        env: Env = EmptyEnv(),  # noqa: B008 - AgentDojo's BasePipelineElement.query signature
        messages: Sequence[ChatMessage] = [],
        extra_args: dict[str, Any] = {},  # noqa: B006 - the same
    ) -> tuple[str, FunctionsRuntime, Env, Sequence[ChatMessage], dict[str, Any]]:
        wire = [_message_to_openai(m, self.model) for m in messages]
        tools = [_function_to_openai(t) for t in runtime.functions.values()]
        for _ in range(APPROVAL_ROUNDS + 1):
            try:
                completion = self.client.chat.completions.create(
                    model=self.model,
                    messages=wire,
                    tools=tools,
                    tool_choice="auto",
                    extra_headers={"x-interlock-run-id": self.run_id},
                )
            except openai.APIStatusError as exc:
                if exc.status_code >= 500:
                    raise
                # The gateway stopped the run (a cap, the loop breaker, a halt): the agent ends here, and
                # AgentDojo judges the environment as the calls made so far left it.
                self.stopped.append(f"{exc.status_code}: {str(exc)[:200]}")
                text = f"[the gateway stopped this run: HTTP {exc.status_code}]"
                return query, runtime, env, [*messages, _text_message(text)], extra_args
            message = completion.choices[0].message
            self.transcript = [*wire, message.model_dump(exclude_none=True)]
            new = [i for i in HELD.findall(message.content or "") if i not in self.held]
            self.held.update(new)
            for approval_id in new:
                if self.approver.decide(approval_id, self.grant) and self.grant:
                    self.granted += 1
            if not (new and self.grant):
                break  # the same conversation is re-sent only after a grant, as an agent whose call was approved
        return query, runtime, env, [*messages, _openai_to_assistant_message(message)], extra_args


class ScriptSetter(BasePipelineElement):
    """First in the pipeline: hands the stub model this case's script, computed from the case's environment."""

    def __init__(self, stub: str) -> None:
        self.stub = stub
        self.user_task: Any = None
        self.injection_task: Any = None
        self.case = ""

    def query(
        self,
        query: str,
        runtime: FunctionsRuntime,
        env: Env = EmptyEnv(),  # noqa: B008 - AgentDojo's BasePipelineElement.query signature
        messages: Sequence[ChatMessage] = [],
        extra_args: dict[str, Any] = {},  # noqa: B006 - the same
    ) -> tuple[str, FunctionsRuntime, Env, Sequence[ChatMessage], dict[str, Any]]:
        def calls(task: Any) -> tuple[Call, ...]:
            if task is None:
                return ()
            return tuple(Call(c.function, dict(c.args)) for c in task.ground_truth(env.model_copy(deep=True)))

        script = Script(
            calls(self.user_task), calls(self.injection_task), self.user_task.GROUND_TRUTH_OUTPUT or "", self.case
        )
        status, body = post(self.stub + "/stub/script", "", script.to_json(), method="PUT")
        if status != 200:
            raise RuntimeError(f"the stub refused the script: {status} {body}")
        return query, runtime, env, messages, extra_args


def mean(values: Sequence[bool]) -> float:
    """The fraction of true values (0.0 for none)."""
    return sum(values) / len(values) if values else 0.0


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    """The three passes over one suite (see the module docstring)."""
    suite = get_suite(BENCHMARK_VERSION, args.suite)
    client = openai.OpenAI(base_url=args.gateway + "/v1", api_key=args.key, max_retries=0, timeout=60)
    approver = Approver(args.gateway, args.admin_key)
    llm = GatewayLLM(client, args.model, approver)
    setter = ScriptSetter(args.stub)
    pipeline = AgentPipeline(
        [
            SystemMessage(load_system_message(None)),
            InitQuery(),
            setter,
            llm,
            ToolsExecutionLoop([ToolsExecutor(), llm], max_iters=MAX_ITERS),
        ]
    )
    pipeline.name = PIPELINE_NAME
    attack = load_attack(ATTACK, suite, pipeline)
    user_tasks = list(suite.user_tasks.values())[: args.user_tasks or None]
    injection_tasks = list(suite.injection_tasks.values())[: args.injection_tasks or None]
    # Some injection tasks ship an empty ground truth (workspace's 6-13 in v1.2.2): the scripted model makes
    # no call for them, so no policy is tested there. They stay in `asr` (AgentDojo's denominator) and are
    # left out of `asr_attempted`.
    default_env = suite.load_and_inject_default_environment({})
    scripted = {t.ID for t in injection_tasks if t.ground_truth(default_env.model_copy(deep=True)) != []}
    deadline = time.monotonic() + args.max_seconds
    nonce = uuid.uuid4().hex[:8]
    errors: list[str] = []
    stops: list[str] = []  # runs the gateway stopped (caps, loop breaker), judged as they stood
    truncated = False

    def case(user_task: Any, injection_task: Any, grant: bool) -> tuple[bool, bool, int]:
        """(utility, attack succeeded, held calls) of one case; an error counts as neither."""
        name = f"{user_task.ID}/{injection_task.ID if injection_task else '-'}"
        setter.user_task, setter.injection_task, setter.case = user_task, injection_task, name
        llm.start_case(f"adj-{nonce}-{args.suite}-{'grant' if grant else 'deny'}-{name.replace('/', ':')}", grant)
        try:
            injections = attack.attack(user_task, injection_task) if injection_task is not None else {}
            utility, security = suite.run_task_with_pipeline(pipeline, user_task, injection_task, injections)
        except Exception as exc:  # a failed case is reported, not hidden, and the run goes on
            errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
            log(f"  error in {name}: {errors[-1]}")
            return False, False, len(llm.held)
        stops.extend(f"{name}: {why}" for why in llm.stopped)
        if args.trace is not None:
            record = {"case": name, "grant": grant, "utility": utility, "security": security, "held": sorted(llm.held)}
            with args.trace.open("a") as f:
                f.write(json.dumps({**record, "messages": llm.transcript}, default=str) + "\n")
        return bool(utility), bool(security) and injection_task is not None, len(llm.held)

    started = time.monotonic()
    granted_utility, held_counts, strict_utility = [], [], []
    per_task: dict[str, dict[str, Any]] = {}
    for user_task in user_tasks:
        u, _, held = case(user_task, None, grant=True)
        granted_utility.append(u)
        held_counts.append(held)
        s, _, _ = case(user_task, None, grant=False)
        strict_utility.append(s)
        per_task[user_task.ID] = {"utility": u, "strict": s, "held": held}
    log(f"{args.suite}: no attack done in {time.monotonic() - started:.0f} s")
    asr, under_attack, held_attack, attempted = [], [], [], []
    hijacked: list[str] = []
    for user_task in user_tasks:
        if time.monotonic() > deadline:
            truncated = True
            break
        for injection_task in injection_tasks:
            u, hit, held = case(user_task, injection_task, grant=False)
            under_attack.append(u)
            asr.append(hit)
            if injection_task.ID in scripted:
                attempted.append(hit)
            held_attack.append(held)
            if hit:
                hijacked.append(f"{user_task.ID}/{injection_task.ID}")
        log(f"{args.suite}: {user_task.ID} under attack ({len(asr)} cases, {sum(asr)} hijacked)")
    return {
        "suite": args.suite,
        "cases": len(asr),
        "asr": mean(asr),
        "utility_no_attack": mean(granted_utility),
        "utility_no_attack_strict": mean(strict_utility),
        "utility_under_attack": mean(under_attack),
        "approvals_per_task": sum(held_counts) / len(held_counts) if held_counts else 0.0,
        "benchmark_version": BENCHMARK_VERSION,
        "attack": ATTACK,
        "user_tasks": len(user_tasks),
        "injection_tasks": len(injection_tasks),
        "held_under_attack_per_case": sum(held_attack) / len(held_attack) if held_attack else 0.0,
        "scripted_injection_tasks": sorted(scripted),
        "cases_attempted": len(attempted),
        "asr_attempted": mean(attempted),
        "hijacked": hijacked,
        "no_attack": per_task,
        "errors": errors,
        "stopped_by_gateway": stops,
        "approval_api_failures": approver.failures,
        "truncated": truncated,
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--gateway", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--stub", required=True, help="the stub model, http://127.0.0.1:PORT")
    parser.add_argument("--key", required=True, help="the agent's key")
    parser.add_argument("--admin-key", required=True, help="decides approvals")
    parser.add_argument("--model", default="hijacked", help="the gateway's model alias")
    parser.add_argument("--user-tasks", type=int, default=0, help="only the first N user tasks (0: all)")
    parser.add_argument("--injection-tasks", type=int, default=0, help="only the first N injection tasks (0: all)")
    parser.add_argument("--trace", type=Path, help="append each case's last conversation here (JSON lines)")
    parser.add_argument("--max-seconds", type=float, default=3600, help="start no attack case after this long")
    args = parser.parse_args()
    result = run_suite(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
