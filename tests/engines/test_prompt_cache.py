"""The engine's prompt cache: saved sequences found by longest prefix, covered ones dropped, a byte budget."""

from __future__ import annotations

import ctypes

from interlock.engines.llamacpp.prompt_cache import PromptCache


def state(n: int) -> ctypes.Array[ctypes.c_uint8]:
    return (ctypes.c_uint8 * n)()


def test_the_longest_shared_prefix_wins_and_never_the_last_token() -> None:
    cache = PromptCache(1000)
    cache.put([1, 2, 3, 4, 5], state(10))
    cache.put([1, 2, 9, 9], state(10))
    entry, n = cache.longest([1, 2, 3, 4, 7])
    assert entry is not None and entry.tokens == [1, 2, 3, 4, 5] and n == 4
    entry, n = cache.longest([1, 2, 3, 4, 5])  # the same prompt: its last token is decoded again
    assert n == 4
    assert cache.longest([8, 1, 2]) == (None, 0)


def test_an_entry_that_covers_others_replaces_them() -> None:
    cache = PromptCache(1000)
    cache.put([1, 2, 3], state(10))
    cache.put([1, 2, 3, 4, 5], state(20))  # the conversation went on: the shorter one is covered
    assert len(cache) == 1 and cache.nbytes == 20
    assert cache.holds([1, 2, 3]) and cache.holds([1, 2, 3, 4, 5]) and not cache.holds([1, 2, 3, 4, 6])


def test_the_least_recently_used_go_first_beyond_the_budget() -> None:
    cache = PromptCache(100)
    cache.put([1, 1], state(40))
    cache.put([2, 2], state(40))
    first, _ = cache.longest([1, 1, 0])
    assert first is not None
    cache.touch(first)  # used again: [2, 2] is now the oldest
    cache.put([3, 3], state(40))
    assert cache.nbytes == 80 and len(cache) == 2
    assert cache.longest([2, 2, 0]) == (None, 0)
    assert cache.longest([1, 1, 0])[1] == 2 and cache.longest([3, 3, 0])[1] == 2


def test_a_state_larger_than_the_budget_is_not_kept() -> None:
    cache = PromptCache(10)
    assert not cache.put([1, 2, 3], state(11))
    assert len(cache) == 0 and cache.nbytes == 0


def test_entries_serve_only_their_own_partition() -> None:
    cache = PromptCache(1000)
    cache.put([1, 2, 3, 4, 5], state(10), "key:a")
    assert cache.longest([1, 2, 3, 4, 9], "key:b") == (None, 0)
    assert cache.longest([1, 2, 3, 4, 9], "key:a")[1] == 4
    assert not cache.holds([1, 2, 3], "key:b") and cache.holds([1, 2, 3], "key:a")
    cache.put([1, 2, 3, 4, 5, 6], state(10), "key:b")  # covers key a's entry, but does not replace it
    assert len(cache) == 2 and cache.longest([1, 2, 3, 4, 5, 7], "key:a")[0] is not None
