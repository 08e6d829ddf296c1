"""Fine-tuning on this machine (`interlock tune`) and the in-context-learning variant.

The tiny fine-tune is real: a few steps of LoRA on the packaged SmolLM2 in the training subprocess,
interrupted after a checkpoint and resumed, then the adapter loaded by the embedded llama.cpp engine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from typer.testing import CliRunner

from interlock.cli.main import app
from interlock.engines.embeddings.minilm import SentenceEncoder
from interlock.engines.gguf import default_model_path
from interlock.engines.training.adapters import LoraWeights, gguf_name, permute_rows, write_lora_gguf
from interlock.engines.training.lora import TrainSpec, sha256_file
from interlock.flywheel import tuning
from interlock.flywheel.icl import Demonstration, ExampleIndex, InContextProvider, Options, with_demonstrations
from interlock.providers.base import Provider
from interlock.providers.local import LocalChatProvider
from interlock.providers.local import Options as LocalOptions
from interlock.settings import EngineSettings, ModelSettings
from interlock.types import ChatChunk, ChatRequest, ChatResponse

PROMPT = [
    {"role": "system", "content": "Reply with JSON."},
    {"role": "user", "content": "Invoice from Acme Ltd, 12.50 EUR"},
]


def _examples(path: Path) -> Path:
    answer = json.dumps({"vendor": "Acme Ltd", "amount": "12.50", "currency": "EUR"})
    lines = [{"messages": [*PROMPT, {"role": "assistant", "content": answer}]}] * 2
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


# ---- the adapter file ----


def test_lora_gguf_has_llama_cpp_names_shapes_and_the_query_permutation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    q = LoraWeights(a=rng.normal(size=(4, 8)).astype(np.float32), b=rng.normal(size=(8, 4)).astype(np.float32))
    v = LoraWeights(a=rng.normal(size=(4, 8)).astype(np.float32), b=rng.normal(size=(4, 4)).astype(np.float32))
    path = tmp_path / "a.gguf"
    weights = {"model.layers.0.self_attn.q_proj": q, "model.layers.1.self_attn.v_proj": v}
    write_lora_gguf(path, weights, alpha=8, n_head=2, n_head_kv=1, name="t")
    reader = gguf.GGUFReader(str(path))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == 8.0
    tensors = {t.name: np.asarray(t.data, dtype=np.float32) for t in reader.tensors}
    assert set(tensors) == {f"{n}.weight.lora_{x}" for n in ("blk.0.attn_q", "blk.1.attn_v") for x in "ab"}
    # The query's B rows are in llama.cpp's rotary order; other projections are unchanged.
    np.testing.assert_allclose(tensors["blk.0.attn_q.weight.lora_b"], permute_rows(q.b, 2), atol=1e-2)
    assert not np.allclose(permute_rows(q.b, 2), q.b)
    np.testing.assert_allclose(tensors["blk.1.attn_v.weight.lora_b"], v.b, atol=1e-2)
    np.testing.assert_allclose(tensors["blk.0.attn_q.weight.lora_a"], q.a, atol=1e-2)


@pytest.mark.slow
def test_the_permutation_undoes_the_one_transformers_applies_when_it_loads_a_gguf() -> None:
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor  # imports torch: seconds

    w = np.arange(12 * 3, dtype=np.float32).reshape(12, 3)
    for heads, kv in ((3, 3), (3, 1)):  # query (all heads), key (fewer KV heads)
        loaded = LlamaTensorProcessor()._reverse_permute_weights(w, heads, kv)  # type: ignore[no-untyped-call]
        np.testing.assert_array_equal(permute_rows(loaded, kv), w)


def test_a_module_llama_cpp_cannot_place_is_refused() -> None:
    assert gguf_name("base_model.model.model.layers.7.mlp.down_proj") == "blk.7.ffn_down"
    with pytest.raises(ValueError, match=r"no llama\.cpp tensor"):
        gguf_name("model.embed_tokens")


# ---- the command ----


def test_tune_needs_exactly_one_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["tune", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "--data FILE.jsonl or --dataset" in " ".join(result.output.split())


def test_tune_without_the_train_extra_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "missing_modules", lambda: ["torch", "peft"])
    data = _examples(tmp_path / "d.jsonl")
    result = CliRunner().invoke(app, ["tune", "--data", str(data), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "interlock[train]" in said and "needs torch, peft" in said


def test_tune_refuses_a_file_that_is_not_chat_examples(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "no answer"}]}) + "\n")
    result = CliRunner().invoke(app, ["tune", "--data", str(data), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "bad.jsonl:1: the last message must be the assistant's answer" in " ".join(result.output.split())


# ---- a real tiny fine-tune ----


async def _greedy(provider: LocalChatProvider) -> str:
    await provider.start()
    try:
        request = ChatRequest.model_validate({"model": "m", "messages": PROMPT, "temperature": 0, "max_tokens": 24})
        response = await provider.chat(request)
        return response.choices[0].message.content or ""
    finally:
        await provider.close()


@pytest.mark.slow
@pytest.mark.model
def test_a_tiny_fine_tune_lowers_the_loss_resumes_and_changes_what_the_engine_says(tmp_path: Path) -> None:
    spec = TrainSpec(
        data=str(_examples(tmp_path / "d.jsonl")),
        out=str(tmp_path / "out"),
        base=str(default_model_path()),
        epochs=5,
        max_steps=5,
        batch_size=2,
        lr=1e-2,
        rank=8,
        alpha=16,
        layers=2,
        checkpoint_every=2,
        threads=2,
    )
    events: list[dict[str, Any]] = []

    def interrupt_after_checkpoint(event: dict[str, Any]) -> None:
        events.append(event)
        if event["event"] == "checkpoint":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tuning.train(spec, interrupt_after_checkpoint)
    assert (tmp_path / "out" / "checkpoint.pt").is_file()
    result = tuning.train(spec, events.append)
    starts = [e for e in events if e["event"] == "start"]
    assert [s["resumed_from"] for s in starts] == [0, 2]
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4, 5]
    assert losses[-1] < losses[0] * 0.8
    assert result["steps"] == 5 and not (tmp_path / "out" / "checkpoint.pt").exists()

    adapter = tmp_path / "out" / "adapter.gguf"
    engine = EngineSettings(slots=1, n_ctx_per_slot=256, threads=2)
    settings = ModelSettings(provider="local")
    base = asyncio.run(_greedy(LocalChatProvider("m", settings, engine, LocalOptions())))
    tuned = asyncio.run(_greedy(LocalChatProvider("m", settings, engine, LocalOptions(lora=str(adapter)))))
    assert tuned != base

    # The same recipe again is not retrained, and registering it twice keeps one version.
    again: list[dict[str, Any]] = []
    assert tuning.train(spec, again.append)["spec_digest"] == result["spec_digest"]
    assert again[0]["event"] == "reused"
    ref = tuning.DatasetRef(None, None, "abc")
    first = tuning.register(tmp_path / "home", spec, result, ref)
    assert tuning.register(tmp_path / "home", spec, result, ref)["version"] == first["version"] == 1
    assert first["files"]["adapter"]["sha256"] == sha256_file(adapter)
    snippet = tuning.config_snippet(first)
    assert f'lora = "{adapter}"' in snippet
    # The packaged base is served as its Q8_0 conversion: no `path` pins the slower packaged file.
    assert "path =" not in snippet and 'weights = "q8_0"' in snippet
    other = {**first, "base": {"path": "/models/other.gguf", "sha256": "0" * 64}}
    assert 'path = "/models/other.gguf"' in tuning.config_snippet(other)


# ---- in-context learning ----


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder.load()


DEMOS = [
    Demonstration("Refund request for order 1234, the parcel never arrived", "refund"),
    Demonstration("Invoice INV-9 from Globex, total 40.00 USD, due March 3", "invoice"),
    Demonstration("What time does the shop open on Sundays?", "hours"),
]


@pytest.mark.model
def test_retrieval_ranks_the_most_similar_example_first(encoder: SentenceEncoder) -> None:
    index = ExampleIndex.build(DEMOS, encoder)
    query = encoder.encode(["Invoice 77 from Initech: 12.00 EUR, due June 1"])[0]
    found = index.nearest(query, k=2)
    assert found[0][1].answer == "invoice"
    assert len(found) == 2 and found[0][0] > found[1][0]
    assert index.nearest(query, k=3, min_similarity=0.99) == []


def test_demonstrations_go_after_the_system_message_best_last() -> None:
    request = ChatRequest.model_validate({"model": "m", "messages": PROMPT})
    out = with_demonstrations(request, [DEMOS[1], DEMOS[0]])
    roles = [m.role for m in out.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert out.messages[3].text() == DEMOS[1].question and out.messages[4].text() == "invoice"
    assert out.messages[-1].text() == PROMPT[1]["content"]


class _Recorder(Provider):
    def __init__(self) -> None:
        super().__init__("m", ModelSettings(provider="fake"))
        self.seen: list[ChatRequest] = []

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.seen.append(request)
        return ChatResponse.model_validate(
            {"id": "x", "created": 0, "model": "m", "choices": [{"message": {"role": "assistant", "content": "ok"}}]}
        )

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        raise NotImplementedError


@pytest.mark.model
async def test_the_in_context_provider_sends_the_nearest_examples_to_the_inner_model(tmp_path: Path) -> None:
    lines = [
        {"messages": [{"role": "user", "content": d.question}, {"role": "assistant", "content": d.answer}]}
        for d in DEMOS
    ]
    path = tmp_path / "good.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    inner = _Recorder()
    provider = InContextProvider("m", inner.model, inner, Options(examples=str(path), k=1))
    await provider.start()
    assert provider.readiness() == (True, "ready")
    request = ChatRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "My refund for order 55?"}]}
    )
    await provider.chat(request)
    sent = inner.seen[0].messages
    assert [m.text() for m in sent] == [DEMOS[0].question, "refund", "My refund for order 55?"]


def test_a_stored_dataset_is_read_as_its_train_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from interlock.cli.tune import _dataset_file

    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INTERLOCK_ADMIN_KEY", "sk-il-admin-test-key")
    monkeypatch.delenv("INTERLOCK_CONFIG", raising=False)
    lines = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(10)
    ]
    source = tmp_path / "src.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    runner = CliRunner()
    out = runner.invoke(app, ["datasets", "import", "qa", str(source), "--eval-fraction", "0.3"])
    assert out.exit_code == 0, out.output
    path, ref = _dataset_file(None, "qa@1", tmp_path)
    exported = [json.loads(line) for line in path.read_text().splitlines()]
    assert ref.name == "qa" and ref.version == 1 and len(ref.content_hash) == 64
    assert 0 < len(exported) < 10 and all(e["messages"][-1]["role"] == "assistant" for e in exported)
    out = runner.invoke(app, ["tune", "--dataset", "nope", "--out", str(tmp_path / "o")])
    assert out.exit_code != 0 and "nope" in out.output


def test_the_in_context_plugin_builds_its_inner_provider_from_the_remaining_keys(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from interlock.plugins import PROVIDERS
    from interlock.providers.base import ProviderContext
    from interlock.settings import Settings

    plugin = PROVIDERS.get("in-context")
    assert plugin is not None
    context = ProviderContext(settings=Settings(), http=lambda: None)  # type: ignore[arg-type,return-value]
    model = ModelSettings.model_validate(
        {"provider": "in-context", "examples": "good.jsonl", "k": 2, "lora": str(tmp_path / "a.gguf")}
    )
    provider = plugin.factory("extract", model, context, model.plugin_options(plugin.options))
    assert isinstance(provider, InContextProvider) and provider.options.k == 2
    assert isinstance(provider.inner, LocalChatProvider) and provider.inner.kind == "local"
    assert provider.inner._lora == tmp_path / "a.gguf"  # the local provider's own option reached it
    bad = ModelSettings.model_validate({"provider": "in-context", "examples": "good.jsonl", "colour": "red"})
    with pytest.raises(ValidationError, match="colour"):
        plugin.factory("extract", bad, context, bad.plugin_options(plugin.options))
