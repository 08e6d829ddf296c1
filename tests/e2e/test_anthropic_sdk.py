"""The official `anthropic` SDK against `interlock serve`: count_tokens, a 400 that is not retried,
structured output, the model list."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any

import anthropic
import pytest
from pydantic import BaseModel

from tests.conftest import ADMIN_KEY, FAKE_CONFIG
from tests.e2e.conftest import Server

pytestmark = pytest.mark.subprocess


def test_anthropic_sdk_count_tokens_and_bad_request(serve: Callable[[str | None], Server]) -> None:
    server = serve(FAKE_CONFIG)
    with anthropic.Anthropic(base_url=server.url, api_key=ADMIN_KEY) as client:  # the SDK's default retries
        count = client.messages.count_tokens(
            model="echo", system="be brief", messages=[{"role": "user", "content": "hello you"}]
        )
        assert count.input_tokens == 4  # the fake model's tokenizer counts words
        with pytest.raises(anthropic.BadRequestError) as err:
            client.messages.create(
                model="echo",
                max_tokens=20,
                stop_sequences=["a", "b", "c", "d", "e"],
                messages=[{"role": "user", "content": "hi"}],
            )
        assert err.value.status_code == 400 and "stop_sequences" in str(err.value)
        assert err.value.response.headers["x-interlock-error-code"] == "invalid_value"
        msg = client.messages.create(
            model="echo", max_tokens=20, stop_sequences=["there"], messages=[{"role": "user", "content": "hi there"}]
        )
        assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == "there"
    server.proc.terminate()  # graceful: flushes the ledger
    server.proc.wait(15)
    with contextlib.closing(sqlite3.connect(server.home / "interlock.db")) as db:
        rows = db.execute("SELECT endpoint, status FROM usage ORDER BY ts").fetchall()
    assert rows == [("messages", 400), ("messages", 200)]  # one row for the 400: the SDK did not retry it


class Echo(BaseModel):
    echo: str


def test_anthropic_sdk_structured_output_and_models(serve: Callable[[str | None], Server]) -> None:
    """`messages.parse` sends `output_config.format`; the gateway asks the model for that schema's JSON.
    `models.list` and `models.retrieve` read Anthropic's fields from the shared /v1/models."""
    server = serve(FAKE_CONFIG)
    with anthropic.Anthropic(base_url=server.url, api_key=ADMIN_KEY, max_retries=0) as client:
        page = client.models.list()
        assert {m.id for m in page.data} == {"echo", "echo-remote", "vectors"} and not page.has_more
        assert page.last_id == page.data[-1].id
        model = client.models.retrieve("echo")
        assert model.type == "model" and model.display_name == "echo" and model.created_at.year >= 2026
        with pytest.raises(anthropic.NotFoundError) as missing:
            client.models.retrieve("nope")
        assert missing.value.body == {  # Anthropic's error shape, not OpenAI's
            "type": "error",
            "error": {"type": "not_found_error", "message": missing.value.body["error"]["message"]},  # type: ignore[index]
        }
        msg = client.messages.parse(
            model="echo", max_tokens=50, output_format=Echo, messages=[{"role": "user", "content": "a parrot"}]
        )
        assert msg.parsed_output == Echo(echo="a parrot")  # the fake answers JSON only when asked for it
        with client.messages.stream(
            model="echo",
            max_tokens=50,
            output_config={"format": {"type": "json_schema", "schema": Echo.model_json_schema()}},
            messages=[{"role": "user", "content": "two parrots"}],
        ) as stream:
            final = stream.get_final_message()
        assert final.stop_reason == "end_turn"
        assert (
            Echo.model_validate_json("".join(b.text for b in final.content if b.type == "text")).echo == "two parrots"
        )


def test_anthropic_sdk_reads_thinking_blocks_plain_and_streamed(serve: Callable[[str | None], Server]) -> None:
    """Extended thinking: the SDK parses the `thinking` block, and its stream accumulates the thinking deltas."""
    server = serve(FAKE_CONFIG)
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    with anthropic.Anthropic(base_url=server.url, api_key=ADMIN_KEY, max_retries=0) as client:
        msg = client.messages.create(
            model="echo", max_tokens=2048, thinking=thinking, messages=[{"role": "user", "content": "why"}]
        )
        first, text = msg.content
        assert isinstance(first, anthropic.types.ThinkingBlock) and first.thinking == "thinking (low) about: why"
        assert isinstance(text, anthropic.types.TextBlock) and text.text == "echo: why"
        with client.messages.stream(
            model="echo", max_tokens=2048, thinking=thinking, messages=[{"role": "user", "content": "why not"}]
        ) as stream:
            final = stream.get_final_message()
        assert [b.type for b in final.content] == ["thinking", "text"]
        assert final.content[0].thinking == "thinking (low) about: why not"  # type: ignore[union-attr]
