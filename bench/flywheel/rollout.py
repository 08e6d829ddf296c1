"""The flywheel's last step: the fine-tune as a canary beside the teacher, through `interlock serve`, promoted by
the rollout rule on a feedback metric.

    .venv/bin/python bench/flywheel/rollout.py [--work /tmp/flywheel-bench] [--max-requests 240]

Needs a finished `run.py` in WORK (the held-out split `eval.jsonl`, the teacher's `answers.json`, the adapter
in `tuned/adapter.gguf`). Starts the teacher stub and `interlock serve` with an alias `invoices` whose
variants are the teacher (baseline) and the fine-tuned SmolLM2 (the local engine with the adapter, canary),
half the traffic each, and a `[models.invoices.rollout]` on the metric `correct` (the share of the four
fields right, scored against the known answer, posted back with `POST /v1/feedback`). Each held-out document
is asked in turn (its own run id, so the sticky choice spreads them) until the controller decides or
`--max-requests` are spent; prints one JSON object: the decision, its reason, and each variant's numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import FIELDS, parse_fields
from run import ADMIN, ROOT, TEACHER_PRICE, _free_port, _wait


def config(stub_port: int, adapter: Path, min_samples: int) -> str:
    """The gateway's config: the two variants and the rollout rule."""
    return f"""
[[flywheel.metrics]]
name = "correct"
type = "float"
min = 0
max = 1

[models.teacher]
provider = "openai_compatible"
base_url = "http://127.0.0.1:{stub_port}/v1"
model = "strong-1"
price_input_per_mtok = {TEACHER_PRICE[0]}
price_output_per_mtok = {TEACHER_PRICE[1]}

[models.tuned]
provider = "local"
lora = "{adapter}"

[models.invoices]
variants = [{{name = "teacher", model = "teacher", weight = 1}}, {{name = "tuned", model = "tuned", weight = 1}}]

[models.invoices.rollout]
canary = "tuned"
baseline = "teacher"
metric = "correct"
min_samples = {min_samples}
margin = 0.05
max_error_increase = 0.02
confidence = 0.95
"""


def main() -> None:
    """Run the canary until it is decided (or the request budget is spent)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/flywheel-bench"))
    parser.add_argument("--max-requests", type=int, default=240)
    parser.add_argument("--min-samples", type=int, default=20)
    args = parser.parse_args()
    work: Path = args.work
    examples = [json.loads(line) for line in (work / "eval.jsonl").read_text().splitlines() if line.strip()]
    adapter = work / "tuned" / "adapter.gguf"
    home = work / "home-rollout"
    home.mkdir(parents=True, exist_ok=True)
    stub_port, gw_port = _free_port(), _free_port()
    path = work / "rollout.toml"
    path.write_text(config(stub_port, adapter, args.min_samples))
    env = {**os.environ, "INTERLOCK_HOME": str(home), "INTERLOCK_ADMIN_KEY": ADMIN, "INTERLOCK_CONFIG": str(path),
           "INTERLOCK_STORE__KEY_REFRESH_INTERVAL_S": "1"}  # fmt: skip
    logs = (work / "rollout-teacher.log").open("wb"), (work / "rollout-gateway.log").open("wb")
    teacher = [sys.executable, str(ROOT / "bench/flywheel/teacher.py"), "--port", str(stub_port), "--answers",
               str(work / "answers.json")]  # fmt: skip
    stub = subprocess.Popen(teacher, stdout=logs[0], stderr=subprocess.STDOUT)
    serve = [str(Path(sys.executable).parent / "interlock"), "serve", "--port", str(gw_port), "--log-level", "warning"]
    gateway = subprocess.Popen(serve, env=env, stdout=logs[1], stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{gw_port}"
    started = time.monotonic()
    scores: dict[str, list[float]] = {"teacher": [], "tuned": []}
    decided: dict[str, Any] | None = None
    sent = 0
    try:
        _wait(f"http://127.0.0.1:{stub_port}/v1/models", stub)
        _wait(base + "/readyz", gateway)
        with httpx.Client(base_url=base, headers={"authorization": f"Bearer {ADMIN}"}, timeout=120) as http:
            while sent < args.max_requests and decided is None:
                ex = examples[sent % len(examples)]
                body = {"model": "invoices", "messages": ex["messages"][:-1], "temperature": 0, "max_tokens": 96,
                        "response_format": {"type": "json_object"}}  # fmt: skip
                r = http.post("/v1/chat/completions", json=body, headers={"x-interlock-run-id": f"doc-{sent}"})
                sent += 1
                if r.status_code != 200:
                    continue  # counted by the rule as an error of its variant (ledger status)
                got = parse_fields(r.json()["choices"][0]["message"]["content"] or "")
                want = parse_fields(ex["messages"][-1]["content"])
                value = sum(got[f] == want[f] for f in FIELDS) / len(FIELDS)
                scores[r.headers["x-interlock-variant"]].append(value)
                fb = http.post(
                    "/v1/feedback",
                    json={"request_id": r.headers["x-request-id"], "metric": "correct", "value": value},
                )
                fb.raise_for_status()
                if sent % 10 == 0:
                    listed = http.get("/admin/variants").json()["data"][0]
                    rollout = listed["rollout"] or {}
                    if rollout.get("state", "running") != "running":
                        decided = {**rollout, "variants": listed["variants"], "stats": listed["stats"]}
            if decided is None:  # the controller may decide just after the last request
                time.sleep(2.5)
                listed = http.get("/admin/variants").json()["data"][0]
                decided = {**(listed["rollout"] or {}), "variants": listed["variants"], "stats": listed["stats"]}
    finally:
        for proc in (gateway, stub):
            proc.terminate()
            proc.wait(20)
    summary = {
        "requests": sent,
        "seconds": round(time.monotonic() - started, 1),
        "decision": decided.get("state"),
        "reason": decided.get("reason"),
        "weights_after": {v["name"]: v["weight"] for v in decided.get("variants", [])},
        "field_exact_match": {k: round(sum(v) / len(v), 3) if v else None for k, v in scores.items()},
        "requests_by_variant": {k: len(v) for k, v in scores.items()},
    }
    (work / "summary-rollout.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
