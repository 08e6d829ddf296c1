"""The training process: `python -m interlock.engines.training.lora SPEC.json` fine-tunes a LoRA adapter.

It loads the packaged GGUF into transformers (dequantised to float32), wraps the attention and MLP
projections with PEFT LoRA, and trains with AdamW on the assistant's tokens only: each example's prompt
is rendered with the model's own chat template, and tokenized the way the engine tokenizes it (template
text with control tokens parsed, message text without), so the model learns to continue exactly the
prompts it will be served; the answer ends with `<|im_end|>`, so it also learns to stop.

Progress is one JSON object per line on stdout (`start`, `step`, `checkpoint`, `done`, `error`); the
parent renders it. Every `checkpoint_every` steps the trainable weights, the optimiser and the step are
written atomically to `OUT/checkpoint.pt`, with the hash of the spec: a restarted run with the same spec
resumes there (the data order is a function of the seed and the step, so it sees the same batches), and
one with a different spec starts over. At the end it writes `adapter.gguf` (and `merged.gguf` when asked),
`peft/` (the adapter in PEFT's format, for other tools) and `result.json`.

This is the only module that imports torch; the gateway never imports it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_MARK = re.compile("\ue000(\\d+)\ue001")


@dataclass(frozen=True)
class TrainSpec:
    """Everything that decides the result; its hash keys the checkpoint."""

    data: str  # OpenAI fine-tuning JSONL: {"messages": [...]} whose last message is the answer
    out: str
    base: str  # the GGUF file to adapt
    epochs: float = 2.0
    lr: float = 1e-3
    rank: int = 16
    alpha: float = 32.0
    max_steps: int | None = None
    seed: int = 0
    batch_size: int = 8
    max_length: int = 512
    checkpoint_every: int = 25
    threads: int = 0  # 0: every core
    merge: bool = False
    bf16: bool = True  # autocast the matmuls to bfloat16 (weights and optimiser stay float32)
    name: str = "smollm2-lora"
    targets: tuple[str, ...] = field(default=TARGETS)
    layers: int = 0  # adapt only the top N transformer layers (0: all); backward then stops below them

    def digest(self) -> str:
        """What the checkpoint is valid for (the output folder and thread count do not change the result)."""
        data = {
            k: v for k, v in asdict(self).items() if k not in ("out", "threads", "checkpoint_every", "merge", "name")
        }
        data["data_sha256"] = sha256_file(Path(self.data))
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def emit(event: str, **fields: Any) -> None:
    """One progress line for the parent."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content or "")


def load_examples(path: Path) -> list[list[dict[str, str]]]:
    """The conversations of a JSONL file, as role/content pairs; a line that is not one is an error naming it."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}:{n}: not a JSON object with 'messages'") from None
        if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
            raise ValueError(f"{path}:{n}: 'messages' must be a non-empty list")
        if messages[-1].get("role") != "assistant":
            raise ValueError(f"{path}:{n}: the last message must be the assistant's answer")
        roles = {"developer": "system"}
        out.append([{"role": roles.get(m.get("role"), m.get("role")), "content": _text(m)} for m in messages])
    if not out:
        raise ValueError(f"{path}: no examples")
    return out


def encode(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 on the prompt) of one conversation, tokenized as the engine does."""
    *prompt, answer = messages
    texts = [m["content"] for m in prompt]
    marked = [{**m, "content": f"\ue000{i}\ue001"} for i, m in enumerate(prompt)]
    rendered = tokenizer.apply_chat_template(marked, tokenize=False, add_generation_prompt=True)
    parts = _MARK.split(rendered)
    ids: list[int] = []
    for i, part in enumerate(parts):
        if i % 2:
            ids += tokenizer.encode(texts[int(part)], add_special_tokens=False, split_special_tokens=True)
        elif part:
            ids += tokenizer.encode(part, add_special_tokens=False)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    target = [*tokenizer.encode(answer["content"], add_special_tokens=False, split_special_tokens=True), end]
    ids, labels = ids + target, [-100] * len(ids) + target
    return ids[:max_length], labels[:max_length]


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def train(spec: TrainSpec) -> dict[str, Any]:
    """Run (or resume) the fine-tune described by `spec`; returns what `result.json` holds."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from interlock.engines.training.adapters import LoraWeights, write_lora_gguf, write_merged_gguf

    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = spec.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    digest = spec.digest()
    started = time.monotonic()
    base = Path(spec.base)
    tokenizer = AutoTokenizer.from_pretrained(str(base.parent), gguf_file=base.name)
    base_model = AutoModelForCausalLM.from_pretrained(str(base.parent), gguf_file=base.name, dtype=torch.float32)
    torch.manual_seed(spec.seed)
    n_layers = int(base_model.config.num_hidden_layers)
    heads, heads_kv = int(base_model.config.num_attention_heads), int(base_model.config.num_key_value_heads)
    top = list(range(n_layers - spec.layers, n_layers)) if 0 < spec.layers < n_layers else None
    config = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,  # type: ignore[arg-type]  # typed int, used as alpha / r: a float is fine
        target_modules=list(spec.targets),
        layers_to_transform=top,
        lora_dropout=0.0,
        bias="none",
    )
    model: Any = get_peft_model(base_model, config)
    examples = [encode(tokenizer, m, spec.max_length) for m in load_examples(Path(spec.data))]
    per_epoch = math.ceil(len(examples) / spec.batch_size)
    total = max(1, math.ceil(spec.epochs * per_epoch))
    if spec.max_steps is not None:
        total = min(total, spec.max_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.0)
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    step, tokens, trained_s = 0, 0, 0.0
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if state.get("digest") == digest:
            model.load_state_dict(state["lora"], strict=False)
            optimiser.load_state_dict(state["optimiser"])
            schedule.load_state_dict(state["schedule"])
            step, tokens, trained_s = state["step"], state["tokens"], state["trained_s"]
        else:
            checkpoint.unlink()  # another recipe or dataset: its weights are no start for this one
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    emit("start", examples=len(examples), steps=total, resumed_from=step, trainable=sum(p.numel() for p in params))
    model.train()
    losses: list[float] = []
    while step < total:
        epoch, index = divmod(step, per_epoch)
        batch = [examples[i] for i in _batches(len(examples), spec.batch_size, spec.seed, epoch)[index]]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        t0 = time.monotonic()
        loss = _answer_loss(torch, model, input_ids, mask, labels, spec.bf16)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad(set_to_none=True)
        trained_s += time.monotonic() - t0
        step += 1
        tokens += int(mask.sum())
        losses.append(float(loss.detach()))
        emit("step", step=step, total=total, loss=round(losses[-1], 5), tokens=tokens, seconds=round(trained_s, 2))
        if step % spec.checkpoint_every == 0 and step < total:
            _save_checkpoint(torch, model, optimiser, schedule, checkpoint, digest, step, tokens, trained_s)
            emit("checkpoint", step=step)
    weights = {}
    for name, module in model.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if lora_a is not None and "default" in lora_a:
            weights[name.removeprefix("base_model.model.")] = LoraWeights(
                a=lora_a["default"].weight.detach().float().numpy(),
                b=module.lora_B["default"].weight.detach().float().numpy(),
            )
    adapter = out / "adapter.gguf"
    write_lora_gguf(adapter, weights, alpha=spec.alpha, n_head=heads, n_head_kv=heads_kv, name=spec.name)
    files = {"adapter": adapter.name}
    if spec.merge:
        merged = out / "merged.gguf"
        write_merged_gguf(base, merged, weights, scale=spec.alpha / spec.rank, name=spec.name)
        files["merged"] = merged.name
    model.save_pretrained(str(out / "peft"))
    result = {
        "steps": step,
        "examples": len(examples),
        "tokens": tokens,
        "train_seconds": round(trained_s, 2),
        "tokens_per_second": round(tokens / trained_s, 1) if trained_s else None,
        "wall_seconds": round(time.monotonic() - started, 2),
        "first_loss": losses[0] if losses else None,
        "final_loss": sum(losses[-5:]) / len(losses[-5:]) if losses else None,
        "files": files,
        "threads": threads,
        "spec_digest": digest,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))
    checkpoint.unlink(missing_ok=True)
    return result


def _answer_loss(torch: Any, model: Any, input_ids: Any, mask: Any, labels: Any, bf16: bool) -> Any:
    """Mean cross-entropy of the answer tokens.

    The vocabulary projection (49k x 576, the largest matmul of a 135M model) runs only at the positions
    that predict an answer token, not over the whole prompt as the model's own `labels=` path would.
    """
    causal = model.base_model.model
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hidden = causal.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        targets = labels[:, 1:]
        keep = targets != -100
        logits = causal.lm_head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep])


def _save_checkpoint(
    torch: Any, model: Any, optimiser: Any, schedule: Any, path: Path, digest: str, step: int, tokens: int, s: float
) -> None:
    lora = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    state = {
        "digest": digest,
        "step": step,
        "tokens": tokens,
        "trained_s": s,
        "lora": lora,
        "optimiser": optimiser.state_dict(),
        "schedule": schedule.state_dict(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a run killed mid-write leaves the previous checkpoint intact


def main(argv: list[str]) -> int:
    """Entry point of the training process: one argument, the spec's JSON file."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m interlock.engines.training.lora SPEC.json\n")
        return 2
    raw = json.loads(Path(argv[0]).read_text())
    raw["targets"] = tuple(raw.get("targets", TARGETS))
    try:
        result = train(TrainSpec(**raw))
    except (ValueError, OSError) as exc:
        emit("error", message=str(exc))
        return 1
    emit("done", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
