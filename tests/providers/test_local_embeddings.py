import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from interlock.engines.embeddings.minilm import SentenceEncoder, packaged_model_dir
from interlock.errors import BadRequest, Unavailable
from interlock.providers.base import ProviderContext
from interlock.providers.local_embeddings import LocalEmbeddingProvider
from interlock.settings import ModelSettings, Settings
from interlock.types import EmbeddingRequest

pytestmark = pytest.mark.model

ALIAS = "embed-test"


def no_http() -> Any:
    raise AssertionError("the local embedding provider must not use HTTP")


def make_provider(path: str | None = None) -> LocalEmbeddingProvider:
    model = ModelSettings(provider="local", mode="embedding", model="all-MiniLM-L6-v2", path=path)
    return LocalEmbeddingProvider(ALIAS, model, ProviderContext(settings=Settings(), http=no_http))


def request(inputs: Any, **kwargs: Any) -> EmbeddingRequest:
    return EmbeddingRequest(model=ALIAS, input=inputs, **kwargs)


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder.load()


@pytest.fixture
async def provider() -> AsyncIterator[LocalEmbeddingProvider]:
    p = make_provider()
    await p.start()
    yield p
    await p.close()


async def test_readiness_and_token_counts_follow_loading() -> None:
    p = make_provider()
    assert p.kind == "local"
    assert p.readiness() == (False, "loading")
    assert p.count_tokens("hello world") is None
    with pytest.raises(Unavailable):
        await p.embed(request("hello"))

    await p.start()

    assert p.readiness() == (True, "ready")
    assert p.count_tokens("hello world") == 4
    await p.close()


async def test_float_embeddings_in_input_order_with_usage(
    provider: LocalEmbeddingProvider, encoder: SentenceEncoder
) -> None:
    texts = ["A man is eating food.", "", "A considerably longer input sentence than the others."]

    response = await provider.embed(request(texts))

    assert response.model == ALIAS
    assert [d.index for d in response.data] == [0, 1, 2]
    got = np.array([d.embedding for d in response.data], dtype=np.float32)
    np.testing.assert_allclose(got, encoder.encode(texts), atol=1e-6)
    assert response.usage.prompt_tokens == response.usage.total_tokens == sum(encoder.count_tokens(texts))
    assert response.usage.completion_tokens == 0


async def test_a_single_string_input(provider: LocalEmbeddingProvider) -> None:
    response = await provider.embed(request("hello world"))

    assert len(response.data) == 1
    assert len(response.data[0].embedding) == 384
    assert response.usage.prompt_tokens == 4


async def test_base64_round_trips_to_the_float_vectors(provider: LocalEmbeddingProvider) -> None:
    texts = ["base64 please", "and another"]

    floats = await provider.embed(request(texts))
    encoded = await provider.embed(request(texts, encoding_format="base64"))

    for f, b in zip(floats.data, encoded.data, strict=True):
        assert isinstance(b.embedding, str)
        decoded = np.frombuffer(base64.b64decode(b.embedding), dtype="<f4")
        np.testing.assert_array_equal(decoded, np.array(f.embedding, dtype=np.float32))


async def test_dimensions_truncates_and_renormalises(provider: LocalEmbeddingProvider) -> None:
    full = await provider.embed(request("matryoshka"))
    short = await provider.embed(request("matryoshka", dimensions=64))

    vector = np.array(short.data[0].embedding)
    head = np.array(full.data[0].embedding[:64])
    assert vector.shape == (64,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(vector, head / np.linalg.norm(head), atol=1e-6)


async def test_dimensions_of_the_full_size_is_the_full_vector(provider: LocalEmbeddingProvider) -> None:
    full = await provider.embed(request("same"))
    same = await provider.embed(request("same", dimensions=384))

    assert same.data[0].embedding == full.data[0].embedding


async def test_dimensions_beyond_the_model_is_a_bad_request(provider: LocalEmbeddingProvider) -> None:
    with pytest.raises(BadRequest, match="384") as caught:
        await provider.embed(request("too big", dimensions=385))

    assert caught.value.status == 400
    assert caught.value.param == "dimensions"


@pytest.mark.parametrize("tokens", [[101, 7592, 102], [[101, 7592, 102]]])
async def test_token_array_input_is_a_bad_request(provider: LocalEmbeddingProvider, tokens: Any) -> None:
    with pytest.raises(BadRequest, match="list of strings") as caught:
        await provider.embed(request(tokens))

    assert caught.value.param == "input"


async def test_concurrent_requests_each_get_their_own_vectors(
    provider: LocalEmbeddingProvider, encoder: SentenceEncoder
) -> None:
    texts = [f"request number {i} about topic {i * 7}" for i in range(6)]

    responses = await asyncio.gather(*(provider.embed(request(t)) for t in texts))

    got = np.array([r.data[0].embedding for r in responses], dtype=np.float32)
    np.testing.assert_allclose(got, encoder.encode(texts), atol=1e-5)


async def test_model_path_overrides_the_packaged_folder(tmp_path: Any) -> None:
    found = make_provider(path=str(packaged_model_dir()))
    await found.start()
    assert found.readiness() == (True, "ready")
    await found.close()

    missing = make_provider(path=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not a sentence-transformers model folder"):
        await missing.start()
    assert missing.readiness() == (False, "loading")
    await missing.close()
