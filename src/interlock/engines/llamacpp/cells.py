"""Where an admitted job's KV cells come from: its slot's last job, another slot, or the prompt cache.

`SlotCells.place` chooses the slot for a job (`slots.choose_slot`), saves what the job would overwrite
there in the prompt cache if it is worth keeping (`slots.worth_keeping`), and gives the slot the longest
prefix of the job's prompt that exists anywhere: what the slot holds itself, cells another slot holds or
is decoding (`slots.find_share`; a slot still decoding them is waited for), or a saved sequence. The
engine thread owns it; everything here runs between two decodes.
"""

from __future__ import annotations

from typing import Any

import llama_cpp

from interlock.engines.llamacpp.context import copy_prefix, load_sequence, sequence_state
from interlock.engines.llamacpp.prompt_cache import Entry, PromptCache
from interlock.engines.llamacpp.slots import MIN_COPIED, Job, Share, Slot, choose_slot, find_share, worth_keeping


class SlotCells:
    """The KV cells of the engine's slots, as jobs are admitted, and what it saved them from decoding."""

    def __init__(self, slots: list[Slot], *, kv_unified: bool, share: bool, prompt_cache_mib: int) -> None:
        self.ctx: Any = None  # the llama context, once the engine has loaded
        self.slots = slots
        self.kv_unified = kv_unified
        self.share = share
        # Saved sequences in host memory; with the per-sequence cache, where placement overwrites slots.
        use_cache = share and not kv_unified and prompt_cache_mib > 0
        self.cache = PromptCache(prompt_cache_mib << 20) if use_cache else None
        self.reused = self.shared = self.kept = self.cached = 0  # prompt tokens (cells, for `kept`)

    def place(self, job: Job, free: list[Slot]) -> Slot:
        """Choose one of the `free` slots for `job`, start it there and give it the cells of its prompt that exist."""
        entry, saved = self.cache.longest(job.prompt, job.partition) if self.cache is not None else (None, 0)
        slot = choose_slot(self.slots, free, job, kv_unified=self.kv_unified, share=self.share, saved=saved)
        self._keep(slot, job)
        reused = slot.assign(job)
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self.ctx), slot.seq_id, reused, -1)
        self.reused += reused
        share = find_share(self.slots, slot, job) if self.share else None
        if entry is not None and saved >= max(slot.fed, share.length if share else 0) + MIN_COPIED:
            self._load_saved(slot, entry, saved)
        elif share is not None and share.due():
            self._take_share(slot, share)  # now, before a later job of this round trims the donor
        else:
            slot.share = share
        return slot

    def take_due_shares(self) -> None:
        """Copy the prompt prefixes whose donors have decoded them (or stopped) into their waiting slots."""
        for slot in self.slots:
            if slot.share is not None and slot.share.due():
                share, slot.share = slot.share, None
                self._take_share(slot, share)

    def stats(self) -> dict[str, int]:
        """The counters `EngineStats` reports."""
        cache = self.cache
        return {
            "prompt_tokens_reused": self.reused,
            "prompt_tokens_shared": self.shared,
            "tokens_kept": self.kept,
            "prompt_tokens_cached": self.cached,
            "prompt_cache_entries": len(cache) if cache is not None else 0,
            "prompt_cache_bytes": cache.nbytes if cache is not None else 0,
        }

    def _keep(self, slot: Slot, job: Job) -> None:
        """Save the cells `job` would overwrite in `slot` in the prompt cache first, if worth it."""
        if self.cache is None or not worth_keeping(self.slots, slot, slot.shared_prefix(job)):
            return
        if self.cache.holds(slot.cached, slot.partition):
            return
        state = sequence_state(self.ctx, slot.seq_id)
        if state is not None and self.cache.put(slot.cached, state, slot.partition):
            self.kept += slot.pos

    def _load_saved(self, slot: Slot, entry: Entry, n: int) -> None:
        """Load the first `n` tokens' cells of a prompt cache entry into the slot."""
        assert self.cache is not None
        if not load_sequence(self.ctx, slot.seq_id, entry.state, n):
            self.cache.discard(entry)
            self._forget(slot)
            return
        self.cache.touch(entry)
        self.cached += n - slot.fed
        slot.cached[:] = entry.tokens[:n]
        slot.fed = n

    def _take_share(self, slot: Slot, share: Share) -> None:
        """Copy the donor's KV cells of the slot's prompt prefix into the slot."""
        assert slot.job is not None
        n = share.available(slot.job)
        if n > slot.fed:  # else the donor stopped before decoding more than this slot holds
            if not copy_prefix(self.ctx, share.donor.seq_id, slot.seq_id, n, kv_unified=self.kv_unified):
                self._forget(slot)  # the slot's cells are gone: it decodes its whole prompt
                return
            self.shared += n - slot.fed
            slot.cached[:] = share.donor.cached[:n]
            slot.fed = n

    def _forget(self, slot: Slot) -> None:
        """The slot holds no cells (a copy into it failed): its job decodes the prompt from the start."""
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self.ctx), slot.seq_id, -1, -1)
        del slot.cached[:]
        slot.fed = 0
