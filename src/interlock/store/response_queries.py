"""The Responses API's response store, for every store: SQL written once with `?` placeholders.

Each row belongs to the key that created it: every read and delete is by id *and* owner, so a key can
neither read nor continue nor delete another key's responses (it gets "not found", as for an id that
never existed). Rows past `expires_at` are invisible at once and deleted on the next save.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

_COLUMNS = "id, owner, created_at, expires_at, body, conversation"


@dataclass(frozen=True)
class ResponseRecord:
    """One stored response: the Responses object and the chat conversation up to and including it."""

    id: str
    owner: str
    created_at: float
    expires_at: float
    body: str
    conversation: str


class ResponseQueries:
    """Mixed into a store, which provides `_query` and `_execute` taking `?` placeholders."""

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        raise NotImplementedError

    def _save_response(self, r: ResponseRecord) -> None:
        self._execute("DELETE FROM responses WHERE expires_at <= ?", (r.created_at,))
        self._execute(
            f"INSERT INTO responses ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (r.id, r.owner, r.created_at, r.expires_at, r.body, r.conversation),
        )

    async def save_response(self, record: ResponseRecord) -> None:
        """Store a response, deleting those that have expired."""
        await asyncio.to_thread(self._save_response, record)

    async def get_response(self, response_id: str, owner: str, now: float) -> ResponseRecord | None:
        """The response with this id if `owner` created it and it has not expired."""
        rows = await asyncio.to_thread(
            self._query,
            f"SELECT {_COLUMNS} FROM responses WHERE id = ? AND owner = ? AND expires_at > ?",
            (response_id, owner, now),
        )
        if not rows:
            return None
        i, o, c, e, b, conv = rows[0]
        return ResponseRecord(str(i), str(o), float(c), float(e), str(b), str(conv))

    async def delete_response(self, response_id: str, owner: str) -> bool:
        """Delete a response `owner` created; False if there is none."""
        n = await asyncio.to_thread(
            self._execute, "DELETE FROM responses WHERE id = ? AND owner = ?", (response_id, owner)
        )
        return n > 0
