"""KV cells of recent prompts that no slot holds any more, kept in host memory (llama.cpp's `--cache-ram`).

A slot's cells are a cache of its last conversation only until a new request overwrites them. Before
that happens (`cells.SlotCells.place`), the engine saves the sequence's cells here
(`llama_state_seq_get_data`: its K and V rows, about 23 KB per token for SmolLM2-135M); a later prompt
that starts like a saved one loads them into its slot (`llama_state_seq_set_data`) and decodes only what
follows. So a conversation coming back for its next turn, or the same agent prompt after other traffic
used every slot, skips its history. Entries are evicted least recently used first beyond the byte
budget (`[engine] prompt_cache_mib`). Only the engine thread touches a cache.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from interlock.engines.llamacpp.slots import common_prefix


@dataclass(eq=False)
class Entry:
    """The saved cells of one sequence: the tokens they hold and llama.cpp's serialised state."""

    tokens: list[int]
    state: Any  # a ctypes byte array, handed back to llama.cpp as it is
    key: int  # its place in the cache's order
    partition: str = ""  # whose prompt it was: only a job of the same partition loads it

    @property
    def nbytes(self) -> int:
        return ctypes.sizeof(self.state)


class PromptCache:
    """Saved sequences, least recently used first, within `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._next = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _of(self, partition: str) -> list[Entry]:
        return [e for e in self._entries.values() if e.partition == partition]

    def holds(self, tokens: list[int], partition: str = "") -> bool:
        """Whether an entry of `partition` already covers `tokens` (holds them, or them and more)."""
        n = len(tokens)
        return any(len(e.tokens) >= n and common_prefix(e.tokens, tokens) == n for e in self._of(partition))

    def put(self, tokens: list[int], state: Any, partition: str = "") -> bool:
        """Save a sequence's state; entries of its partition it covers are dropped, the oldest go beyond
        the budget (one budget for all partitions)."""
        entry = Entry(list(tokens), state, self._next, partition)
        if entry.nbytes > self.max_bytes:
            return False
        n = len(tokens)
        for old in self._of(partition):
            if len(old.tokens) <= n and common_prefix(old.tokens, tokens) == len(old.tokens):
                self._drop(old.key)
        self._entries[entry.key] = entry
        self._next += 1
        self.nbytes += entry.nbytes
        while self.nbytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        return True

    def longest(self, prompt: list[int], partition: str = "") -> tuple[Entry | None, int]:
        """The entry of `partition` sharing the longest prefix with `prompt` and its length (never the
        last token)."""
        best: Entry | None = None
        length = 0
        limit = len(prompt) - 1
        for entry in self._of(partition):
            n = min(common_prefix(entry.tokens, prompt), limit)
            if n > length:
                best, length = entry, n
        return best, length

    def touch(self, entry: Entry) -> None:
        """Mark `entry` as just used: the last to be evicted."""
        if entry.key in self._entries:
            self._entries.move_to_end(entry.key)

    def discard(self, entry: Entry) -> None:
        """Remove `entry` (llama.cpp refused its state)."""
        if self._entries.get(entry.key) is entry:
            self._drop(entry.key)

    def _drop(self, key: int) -> None:
        self.nbytes -= self._entries.pop(key).nbytes
