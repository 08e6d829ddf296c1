"""`interlock router train | score | eval` on a tiny labelled file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.cli.router import app

pytestmark = pytest.mark.model  # trains the router on the packaged models' embeddings


def _write_data(tmp_path: Path) -> Path:
    rows = ["prompt,cheap-model,strong-model"]
    for i in range(40):
        rows.append(f'"Integrate x^{i} dx from 0 to {i + 1}",False,True')
        rows.append(f'"Name a fruit that is colour number {i}",True,True')
    path = tmp_path / "data.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_train_score_eval(tmp_path: Path) -> None:
    data = _write_data(tmp_path)
    runner = CliRunner()
    router = tmp_path / "router.json"
    result = runner.invoke(app, ["train", "--input", str(data), "--output", str(router), "--max-train", "60"])
    assert result.exit_code == 0, result.output
    assert "strong-model" in result.output
    meta = json.loads(router.read_text())
    assert router.with_suffix(".safetensors").is_file() and meta["sidecar"]["file"] == "router.safetensors"
    assert meta["features"]["identity"] and meta["features"]["stats"] is None  # statistics are opt-in (--stats)
    assert meta["cheap"] == "cheap-model"
    assert meta["strong"] == "strong-model"

    prompts = tmp_path / "prompts.jsonl"
    chat = {"messages": [{"role": "user", "content": "Integrate x^2 dx"}, {"role": "assistant", "content": "x^3/3"}]}
    chat["messages"].append({"role": "user", "content": "Name a red fruit"})
    lines = [json.dumps({"prompt": "Integrate x^3 dx"}), json.dumps("Name a red fruit"), json.dumps(chat)]
    lines.append(json.dumps("Name a fruit that is colour number 7"))
    prompts.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(app, ["score", "--router", str(router), "--input", str(prompts), "--output", str(out)])
    assert result.exit_code == 0, result.output
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["prompt"] for s in scored[:2]] == ["Integrate x^3 dx", "Name a red fruit"]
    assert scored[2]["prompt"] == "[user] Integrate x^2 dx\n[assistant] x^3/3\nName a red fruit"
    assert scored[0]["score"] > scored[1]["score"]
    assert 1 >= scored[0]["p_cheap_not_good_enough"] > scored[1]["p_cheap_not_good_enough"] >= 0
    # The gain is calibrated on the training kind: integrals gain ~1 (cheap wrong, strong right), fruit ~0.
    assert scored[0]["gain"] > 0.5 > 0.2 > scored[3]["gain"]
    assert 1 >= scored[0]["gain"] > scored[1]["gain"] >= -1
    assert scored[2]["model"] == scored[1]["model"] == "cheap-model"  # the last user turn decides

    result = runner.invoke(app, ["eval", "--router", str(router), "--input", str(data), "--resamples", "50", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["router"]["apgr"]["value"] > 0.6
    assert report["random"]["apgr"] == 0.5
    result = runner.invoke(app, ["eval", "--router", str(router), "--input", str(data), "--resamples", "50"])
    assert result.exit_code == 0, result.output
    assert "APGR" in result.output


def test_train_rejects_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{}\n")
    result = CliRunner().invoke(app, ["train", "--input", str(bad), "--output", str(tmp_path / "r.json")])
    assert result.exit_code == 2
