"""The ledger and the audit log as streams of rows, for CSV and JSONL exports (CLI and dashboard).

Both page through the database, so an export of a large ledger or log never holds it in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from typing import Any

from interlock.admin.context import AdminContext
from interlock.audit.chain import AuditEntry, AuditStore
from interlock.auth.keys import Principal, require_admin
from interlock.store.records import UsageRecord

PAGE = 1000
LEDGER_FIELDS = tuple(f.name for f in dataclasses.fields(UsageRecord))


async def ledger_rows(
    ctx: AdminContext, actor: Principal, since: float | None = None, page: int = PAGE
) -> AsyncIterator[UsageRecord]:
    """Every ledger row from `since` on, oldest first, read `page` rows at a time."""
    require_admin(actor, write=False)
    await ctx.store.flush()
    after: tuple[float, str] | None = None
    while True:
        rows = await ctx.store.usage_page(since, after, page)
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = (rows[-1].ts, rows[-1].request_id)


def audit_entries(store: AuditStore, since: float | None = None) -> Iterator[dict[str, Any]]:
    """Audit entries from `since` on, by seq, as SIEM records: every field with the entry's `hash` and
    `prev_hash`, and `metadata` decoded (its canonical JSON, which the hash covers, is `metadata_json`)."""
    for entry in store.entries():
        if since is not None and entry.ts < since:
            continue
        yield siem_record(entry)


def siem_record(entry: AuditEntry) -> dict[str, Any]:
    """One entry as a JSON-ready record."""
    record = dataclasses.asdict(entry)
    record["metadata_json"] = record.pop("metadata")
    record["metadata"] = entry.metadata_dict()
    return record
