"""The served weights: Q4_1 requantised to Q8_0, cached by the source's digest, never served half-written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from interlock.engines import weights
from interlock.engines.gguf import GgufFile, default_model_path
from interlock.engines.weights import WeightsError, cached_name, convert, served_file, sha256_of
from interlock.plugins.config import provider_configs
from interlock.providers.local import LocalChatProvider
from interlock.providers.local import Options as LocalOptions
from interlock.settings import ConfigError, EngineSettings, ModelSettings, load_settings

Q4_1, Q8_0, F32 = gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.F32


def tiny_gguf(path: Path, seed: int = 0) -> np.ndarray:
    """A small GGUF like the packaged one: a Q4_1 matrix, a Q8_0 table, an F32 norm; returns the matrix."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((8, 64)).astype(np.float32)
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_name("tiny")
    writer.add_file_type(3)  # LLAMA_FTYPE_MOSTLY_Q4_1
    writer.add_token_list(["<a>", "b", "c"])
    writer.add_tensor("token_embd.weight", gguf.quants.quantize(rng.standard_normal((3, 32)), Q8_0), raw_dtype=Q8_0)
    writer.add_tensor("blk.0.attn_norm.weight", rng.standard_normal(64).astype(np.float32))
    writer.add_tensor("blk.0.attn_q.weight", gguf.quants.quantize(w, Q4_1), raw_dtype=Q4_1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return w


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The sources converted during the test."""
    calls: list[Path] = []
    real = weights.convert

    def counting(source: Path, target: Path, qtype: str = "q8_0") -> None:
        calls.append(source)
        real(source, target, qtype)

    monkeypatch.setattr(weights, "convert", counting)
    return calls


def test_q4_1_tensors_become_q8_0_and_everything_else_is_copied(tmp_path: Path) -> None:
    source, target = tmp_path / "m.gguf", tmp_path / "q8.gguf"
    w = tiny_gguf(source)
    convert(source, target)
    before, after = gguf.GGUFReader(str(source)), gguf.GGUFReader(str(target))
    types = {t.name: t.tensor_type for t in after.tensors}
    assert types == {"token_embd.weight": Q8_0, "blk.0.attn_norm.weight": F32, "blk.0.attn_q.weight": Q8_0}
    old = {t.name: t for t in before.tensors}
    for t in after.tensors:
        if t.name != "blk.0.attn_q.weight":
            assert bytes(t.data) == bytes(old[t.name].data), t.name
    q4 = gguf.quants.dequantize(old["blk.0.attn_q.weight"].data, Q4_1)
    q8 = gguf.quants.dequantize(next(t for t in after.tensors if t.name == "blk.0.attn_q.weight").data, Q8_0)
    # Q8_0 keeps what Q4_1 kept: within half a Q8_0 step (max |x| / 127 per block of 32) of it.
    step = np.abs(q4.reshape(-1, 32)).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(q8 - q4).reshape(-1, 32) <= step / 2 + 1e-6)
    assert np.abs(q8 - w).max() > 0  # and no better than the 4-bit source: nothing is invented
    fields = {k: f.contents() for k, f in after.fields.items() if not k.startswith("GGUF.")}
    expected = {k: f.contents() for k, f in before.fields.items() if not k.startswith("GGUF.")}
    assert fields.pop("general.file_type") == 7 and expected.pop("general.file_type") == 3
    assert fields == expected


def test_a_file_without_q4_1_tensors_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "m.gguf"
    tiny_gguf(source)
    convert(source, tmp_path / "q8.gguf")
    with pytest.raises(WeightsError, match="no Q4_1 tensors"):
        convert(tmp_path / "q8.gguf", tmp_path / "again.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf")
    with pytest.raises(WeightsError, match="not a readable GGUF file"):
        convert(tmp_path / "junk.gguf", tmp_path / "out.gguf")


def test_the_second_call_reuses_the_cached_file(tmp_path: Path, counted: list[Path]) -> None:
    source, cache = tmp_path / "m.gguf", tmp_path / "cache"
    tiny_gguf(source)
    first = served_file(source, "q8_0", cache)
    assert first.path == cache / cached_name(source, sha256_of(source))
    assert first.sha256 == sha256_of(first.path)
    assert served_file(source, "q8_0", cache) == first
    assert counted == [source]
    assert sorted(p.name for p in cache.iterdir()) == sorted([".lock", first.path.name, first.path.name + ".sha256"])


def test_a_changed_source_converts_again(tmp_path: Path, counted: list[Path]) -> None:
    source, cache = tmp_path / "m.gguf", tmp_path / "cache"
    tiny_gguf(source, seed=0)
    first = served_file(source, "q8_0", cache)
    tiny_gguf(source, seed=1)  # the package upgraded in place: same path, other bytes
    second = served_file(source, "q8_0", cache)
    assert len(counted) == 2 and second.path != first.path and second.sha256 != first.sha256
    assert first.path.is_file()  # another venv may still serve the old package


@pytest.mark.parametrize("damage", ["truncated", "flipped", "no digest"])
def test_a_damaged_cached_file_is_converted_again(tmp_path: Path, counted: list[Path], damage: str) -> None:
    source, cache = tmp_path / "m.gguf", tmp_path / "cache"
    tiny_gguf(source)
    good = served_file(source, "q8_0", cache)
    data = good.path.read_bytes()
    if damage == "truncated":
        good.path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        good.path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    else:
        good.path.with_name(good.path.name + ".sha256").unlink()
    again = served_file(source, "q8_0", cache)
    assert len(counted) == 2
    assert again == good and sha256_of(again.path) == good.sha256


def test_a_failed_conversion_leaves_no_file_under_the_final_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, cache = tmp_path / "m.gguf", tmp_path / "cache"
    tiny_gguf(source)

    def half_then_crash(source: Path, target: Path, qtype: str = "q8_0") -> None:
        target.write_bytes(source.read_bytes()[:100])
        raise OSError("disk full")

    monkeypatch.setattr(weights, "convert", half_then_crash)
    with pytest.raises(WeightsError, match=r"cannot write the Q8_0 weights into .*: disk full; set INTERLOCK_MODEL"):
        served_file(source, "q8_0", cache)
    assert [p.name for p in cache.iterdir()] == [".lock"]  # no partial file, no temporary left behind
    monkeypatch.undo()
    assert served_file(source, "q8_0", cache).path.is_file()


def test_original_serves_the_source_itself(tmp_path: Path, counted: list[Path]) -> None:
    source = tmp_path / "m.gguf"
    tiny_gguf(source)
    served = served_file(source, "original", tmp_path / "cache")
    assert served.path == source and served.sha256 == sha256_of(source)
    assert counted == [] and not (tmp_path / "cache").exists()


def test_an_unknown_weights_value_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[models.smollm2]\nprovider = "local"\nweights = "q4_0"\n')
    with pytest.raises(ConfigError) as info:
        provider_configs(load_settings(cfg, {}))
    assert (
        str(info.value) == f"invalid config in {cfg}:\n  models.smollm2.weights: Input should be 'q8_0' or 'original'"
    )
    cfg.write_text('[models.smollm2]\nprovider = "local"\nweights = "original"\n')
    assert provider_configs(load_settings(cfg, {}))["smollm2"][0].options.weights == "original"  # type: ignore[attr-defined]


@pytest.mark.model
def test_the_packaged_model_converts_and_llama_cpp_answers_alike(tmp_path: Path) -> None:
    import llama_cpp

    served = served_file(default_model_path(), "q8_0", tmp_path)
    q8 = GgufFile.open(served.path)
    assert {kind for _, kind, _ in q8.tensors.values()} == {0, 8}  # F32 norms, Q8_0 everything else
    # The router's token table is the packaged one, unchanged by the conversion.
    np.testing.assert_array_equal(
        q8.tensor("token_embd.weight"), GgufFile.open(default_model_path()).tensor("token_embd.weight")
    )
    # Greedy continuations that are the same for both files, and the most likely next token along a text.
    prompts = {b"One, two, three, four,": 8, b"The Declaration of Independence was signed in the year": 4}
    text = (Path(__file__).parents[2] / "bench" / "engine" / "declaration.txt").read_bytes()[:1200]
    answers, argmaxes = [], []
    for path in (default_model_path(), served.path):
        llm = llama_cpp.Llama(str(path), n_ctx=512, n_threads=2, logits_all=True, verbose=False)
        answers.append([_greedy(llm, llm.tokenize(p, add_bos=True), n) for p, n in prompts.items()])
        llm.reset()
        tokens = llm.tokenize(text, add_bos=True)[:256]
        llm.eval(tokens)
        argmaxes.append(np.asarray(llm.scores[: len(tokens)]).argmax(axis=1))
        llm.close()
    assert answers[0] == answers[1]
    assert float((argmaxes[0] == argmaxes[1]).mean()) > 0.85  # 0.95 measured; a broken conversion gives ~0


def _greedy(llm: Any, prompt: list[int], n: int) -> list[int]:
    llm.reset()
    out: list[int] = []
    for token in llm.generate(prompt, temp=0.0, top_k=1):
        out.append(token)
        if len(out) == n:
            break
    return out


@pytest.mark.model
@pytest.mark.parametrize("choice", ["q8_0", "original"])
async def test_the_provider_serves_the_chosen_file_and_reports_its_digest(choice: str) -> None:
    options = LocalOptions(weights=choice)  # type: ignore[arg-type]
    provider = LocalChatProvider("smollm2", ModelSettings(provider="local"), EngineSettings(slots=1), options)
    await provider.start()
    try:
        assert provider._engine is not None
        served = provider._engine.model_path
        expected = default_model_path() if choice == "original" else served_file(default_model_path(), "q8_0").path
        assert served == expected
        assert provider.model_version == sha256_of(served)[:16]
    finally:
        await provider.close()
