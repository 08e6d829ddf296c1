"""Remote providers against the stub upstream: chunks batched per read, the batch with the end marker marked last."""

from __future__ import annotations

import aiohttp
import pytest

from interlock.errors import UpstreamError
from interlock.providers.anthropic import AnthropicProvider
from interlock.providers.base import Provider, ProviderContext
from interlock.providers.openai_compatible import OpenAICompatibleProvider
from interlock.settings import ModelSettings, Settings
from interlock.types import ChatChunk, ChatRequest


async def _batches(stub_upstream: str, model: str, kind: str = "openai_compatible") -> list[list[ChatChunk]]:
    async with aiohttp.ClientSession() as session:
        context = ProviderContext(settings=Settings(), http=lambda: session)
        provider: Provider
        if kind == "anthropic":
            provider = AnthropicProvider(
                "remote", ModelSettings(provider=kind, base_url=stub_upstream, model=model), context
            )
        else:
            settings = ModelSettings(provider=kind, base_url=f"{stub_upstream}/v1", model=model)
            provider = OpenAICompatibleProvider("remote", settings, context)
        request = ChatRequest.model_validate({"model": "remote", "messages": [{"role": "user", "content": "hi"}]})
        return [batch async for batch in provider.stream_batches(request)]


@pytest.mark.parametrize("kind", ["openai_compatible", "anthropic"])
async def test_a_stream_read_in_one_go_is_one_batch_marked_last(stub_upstream: str, kind: str) -> None:
    batches = await _batches(stub_upstream, "stub-burst", kind)
    assert len(batches) == 1
    assert getattr(batches[0], "last", False) is True
    chunks = batches[0]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the stub upstream."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert all(c.model == "remote" for c in chunks)  # the alias, not the upstream's name


async def test_only_a_batch_that_came_with_done_is_marked_last(stub_upstream: str) -> None:
    batches = await _batches(stub_upstream, "stub-slow")  # one chunk per read, [DONE] alone at the end
    assert len(batches) > 1
    assert not any(getattr(b, "last", False) for b in batches)


async def test_a_stream_cut_before_done_is_an_error(stub_upstream: str) -> None:
    with pytest.raises(UpstreamError) as info:
        await _batches(stub_upstream, "stub-cut")
    assert info.value.code == "upstream_truncated"
