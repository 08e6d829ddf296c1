"""The ledger explorer in-process: filters applied in SQL beyond the newest rows, keyset pages, downloads."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

from starlette.testclient import TestClient

from interlock.store.records import UsageRecord
from tests.conftest import ADMIN_KEY

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def _row(i: int, ts: float, alias: str = "echo", key: str | None = "key_a", status: int = 200) -> UsageRecord:
    return UsageRecord(
        request_id=f"req_{i:06d}", ts=ts, key_id=key, endpoint="chat", alias=alias, provider="fake",
        upstream_model=alias, stream=False, prompt_tokens=1, completion_tokens=1, usage_source="provider",
        cost_micros=i, price_version="config", latency_ms=1.0, ttft_ms=None, status=status, deployment=alias,
    )  # fmt: skip


def _seed(client: TestClient, rows: list[UsageRecord]) -> None:
    store = client.app.state.interlock.store  # type: ignore[attr-defined]
    for r in rows:
        store.record_usage(r)
    client.portal.call(store.flush)  # type: ignore[union-attr]


def test_a_filter_finds_rows_older_than_the_newest_ten_thousand(
    app_client: TestClient, sign_in: Callable[[str], str]
) -> None:
    t0 = 1_767_225_600.0  # 2026-01-01
    old = [_row(i, t0 + i, alias="echo-remote", status=500) for i in range(3)]
    newer = [_row(10 + i, t0 + 86_400 + i * 1e-3) for i in range(10_050)]
    _seed(app_client, old + newer)
    sign_in(ADMIN_KEY)
    page = app_client.get("/ui/ledger?model=echo-remote&status=error").text
    assert 'data-total="3"' in page and page.count("data-request-id=") == 3
    assert 'data-total="3"' in app_client.get("/ui/ledger?until=2026-01-01").text
    assert app_client.get("/ui/ledger/req_000001").status_code == 200  # the detail reads by id, not by scan
    # keyset pages: 200 rows each, newest first, none twice
    first = app_client.get("/ui/ledger?since=2026-01-02").text
    assert "more than 10,000 matching requests" in first and 'id="older-page"' in first  # counted up to 10,000
    older = first.split('id="older-page"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    second = app_client.get(older).text
    ids = lambda html: [p.split('"')[0] for p in html.split('data-request-id="')[1:]]  # noqa: E731
    assert len(ids(first)) == len(ids(second)) == 200 and not set(ids(first)) & set(ids(second))
    assert max(ids(second)) < min(ids(first)) and 'id="newest-page"' in second


def test_the_download_honours_the_filters(app_client: TestClient, sign_in: Callable[[str], str]) -> None:
    t0 = 1_767_225_600.0
    _seed(app_client, [_row(1, t0), _row(2, t0 + 1, alias="echo-remote"), _row(3, t0 + 2, key=None),
                       _row(4, t0 + 3, status=429)])  # fmt: skip
    sign_in(ADMIN_KEY)
    r = app_client.get("/ui/ledger/export?format=csv&model=echo&key=key_a")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["request_id"] for row in rows] == ["req_000004", "req_000001"]
    assert rows[0]["status"] == "429" and rows[1]["cost_micros"] == "1"
    r = app_client.get("/ui/ledger/export?format=jsonl&key=admin")
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert [x["request_id"] for x in lines] == ["req_000003"] and lines[0]["key_id"] is None
    assert app_client.get("/ui/ledger/export?format=xml").status_code == 400
    assert app_client.get("/ui/ledger/export?status=teapot").status_code == 400
    page = app_client.get("/ui/ledger?model=echo&key=key_a").text
    assert 'href="/ui/ledger/export?format=csv&amp;key=key_a&amp;model=echo"' in page
