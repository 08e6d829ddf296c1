"""Numbers a client writes in headers and references: too long or not ASCII digits is a 4xx, never int()'s 500."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from interlock.flywheel.datasets import DatasetError, parse_ref


@pytest.mark.parametrize("declared", ["9" * 5000, "99999999999999999999"])
def test_a_huge_declared_content_length_is_413(client: TestClient, declared: str) -> None:
    r = client.post(
        "/v1/chat/completions",
        content=b'{"model": "echo", "messages": [{"role": "user", "content": "hi"}]}',
        headers={"content-type": "application/json", "content-length": declared},
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("ref", ["invoices@²", "invoices@" + "9" * 5000, "invoices@0", "invoices@x"])
def test_a_dataset_version_must_be_a_small_ascii_number(ref: str) -> None:
    with pytest.raises(DatasetError, match="a number from 1"):
        parse_ref(ref)
    assert parse_ref("invoices@12") == ("invoices", 12)
