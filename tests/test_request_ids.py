"""Request ids: unique, and ordered by time so the ledger's primary-key index only grows at its end."""

from __future__ import annotations

import time

from interlock.gateway.context import new_request_id


def test_request_ids_are_unique_and_fixed_width() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 36 and i.startswith("req_") and int(i[4:], 16) >= 0 for i in ids)


def test_request_ids_sort_by_creation_time() -> None:
    earlier = [new_request_id() for _ in range(100)]
    time.sleep(0.002)  # the time part has millisecond resolution
    later = [new_request_id() for _ in range(100)]
    assert max(earlier) < min(later)
    assert abs(int(later[0][4:16], 16) - time.time() * 1000) < 1000  # the first 12 digits are epoch milliseconds
