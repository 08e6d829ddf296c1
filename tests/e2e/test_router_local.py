"""A router alias end to end: the embedded SmolLM2 as the cheap side, a stub upstream as the strong side."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from tests.api.test_router_alias import train_router
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server

pytestmark = [pytest.mark.model, pytest.mark.subprocess]


def test_router_alias_with_the_local_model_and_a_remote_one(
    serve: Callable[[str | None], Server], stub_upstream: str, tmp_path: Path
) -> None:
    router = train_router(tmp_path)
    server = serve(f"""
[models.smollm2]
provider = "local"
tags = ["local"]
price_input_per_mtok = 0
price_output_per_mtok = 0

[models.strong]
provider = "openai_compatible"
base_url = "{stub_upstream}/v1"
model = "stub"
price_input_per_mtok = 2.5
price_output_per_mtok = 10

[models."interlock/auto".router]
file = "{router}"
strong_share = 0.5
models = {{ "cheap-model" = "smollm2", "strong-model" = "strong" }}
""")
    with openai.OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0) as sdk:
        hard = sdk.chat.completions.with_raw_response.create(
            model="interlock/auto",
            messages=[{"role": "user", "content": "Integrate x^5 dx from 0 to 2"}],
            max_tokens=16,
        )
        easy = sdk.chat.completions.with_raw_response.create(
            model="interlock/auto",
            messages=[{"role": "user", "content": "Name a fruit that is colour number 3"}],
            max_tokens=16,
        )
    assert hard.headers["x-interlock-model"] == "strong"
    assert hard.parse().choices[0].message.content == "Hello from the stub upstream."
    assert easy.headers["x-interlock-model"] == "smollm2" and easy.headers["x-interlock-provider"] == "local"
    assert easy.parse().choices[0].message.content
    assert "score=" in easy.headers["x-interlock-route"] and "reason=" in easy.headers["x-interlock-route"]
