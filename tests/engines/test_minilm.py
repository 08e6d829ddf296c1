import json
import math
from pathlib import Path

import numpy as np
import pytest

from interlock.engines.embeddings.minilm import SentenceEncoder, _gelu, packaged_model_dir

pytestmark = pytest.mark.model

REFERENCE = Path(__file__).parent.parent / "fixtures" / "minilm_reference.json"


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder.load()


def cosine(encoder: SentenceEncoder, a: str, b: str) -> float:
    va, vb = encoder.encode([a, b])
    return float(va @ vb)


def test_matches_sentence_transformers_reference(encoder: SentenceEncoder) -> None:
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    expected = np.array(reference["embeddings"], dtype=np.float32)

    got = encoder.encode(reference["sentences"])

    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-3


@pytest.mark.parametrize(
    ("anchor", "closer", "farther"),
    [
        ("A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."),
        (
            "This is a red cat with a hat.",
            "Have you seen my red cat?",
            "The stock market fell sharply today.",
        ),
        ("How do I reset my password?", "I forgot my login password.", "What is the capital of France?"),
        ("The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."),
        ("A woman is playing the violin.", "A woman plays a musical instrument.", "A dog runs in the park."),
        ("Python is a programming language.", "I write code in Python.", "The python is a large snake."),
    ],
)
def test_similar_sentences_are_closer(encoder: SentenceEncoder, anchor: str, closer: str, farther: str) -> None:
    assert cosine(encoder, anchor, closer) > cosine(encoder, anchor, farther) + 0.1


def test_vectors_are_unit_norm_float32(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(["one", "two sentences here", "a third, somewhat longer sentence to embed"])

    assert vectors.shape == (3, encoder.dimensions) == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_batching_gives_the_same_vectors_as_one_at_a_time(encoder: SentenceEncoder) -> None:
    # Mixed lengths, so batches are padded and reordered by length.
    texts = [
        "short",
        "a much longer sentence with many more word pieces in it, to force padding",
        "",
        "mid size",
    ]
    texts += [f"sentence {i} " * (i % 7) for i in range(8)]

    batched = encoder.encode(texts)
    single = np.stack([encoder.encode([t])[0] for t in texts])

    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_empty_string_and_empty_list(encoder: SentenceEncoder) -> None:
    vector = encoder.encode([""])

    assert np.isfinite(vector).all()
    assert math.isclose(float(np.linalg.norm(vector)), 1.0, abs_tol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_long_input_is_truncated_to_max_tokens(encoder: SentenceEncoder) -> None:
    long = "gateway " * 2000

    assert encoder.max_tokens == 256
    assert encoder.count_tokens([long]) == [256]
    np.testing.assert_allclose(encoder.encode([long]), encoder.encode([long + " different tail"]), atol=1e-6)


def test_count_tokens_includes_special_tokens(encoder: SentenceEncoder) -> None:
    assert encoder.count_tokens(["hello world", ""]) == [4, 2]


def test_load_from_an_explicit_folder() -> None:
    encoder = SentenceEncoder.load(packaged_model_dir())

    assert encoder.dimensions == 384


def test_load_says_what_a_folder_lacks(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no tokenizer\.json, model\.safetensors"):
        SentenceEncoder.load(tmp_path)


def test_load_rejects_other_pooling(tmp_path: Path) -> None:
    for name in ("tokenizer.json", "model.safetensors"):
        (tmp_path / name).write_text("")
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')

    with pytest.raises(ValueError, match="mean pooling"):
        SentenceEncoder.load(tmp_path)


def test_gelu_matches_exact_erf_gelu() -> None:
    x = np.linspace(-40, 40, 8001, dtype=np.float32)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])

    assert np.abs(_gelu(x) - exact).max() < 1e-6
