"""The audit log: chain, checkpoints, head file, and thousands of random tamperings that must all be caught."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import shutil
import sqlite3
import stat
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from interlock.audit.log import (
    HEAD_FILE,
    KEY_FILE,
    PUBLIC_KEY_FILE,
    AuditEntry,
    AuditEvent,
    AuditIntegrityError,
    AuditLog,
    Checkpoint,
    VerifyResult,
    verify_home,
    verify_log,
)
from interlock.audit.sqlite_store import SqliteAuditStore

N_ENTRIES = 300
MUTATIONS = 2000
ENTRY_COLUMNS = ["seq", "ts", "actor_id", "actor_name", "action", "target", "decision", "reason", "metadata"]
ENTRY_COLUMNS += ["prev_hash", "hash"]
CHECKPOINT_COLUMNS = ["id", "ts", "seq", "hash", "count", "prev", "key", "signature"]


def _event(i: int) -> AuditEvent:
    if i % 47 == 0:
        return AuditEvent.admin("key.revoke", actor_id=None, actor_name="admin", target=f"key_{i}", via="cli")
    return AuditEvent.denial(
        "chat.completions", actor_id=f"key_{i % 7}", actor_name="billing-app", reason="model not allowed",
        target="gpt-4o", attempt=i, ratio=i / 7, retry=bool(i % 2),
    )  # fmt: skip


def _log(home: Path, checkpoint_every: int = 100, checkpoint_interval_s: float = 60.0) -> AuditLog:
    store = SqliteAuditStore(home / "interlock.db")
    return AuditLog(store, home, checkpoint_every=checkpoint_every, checkpoint_interval_s=checkpoint_interval_s)


async def _append_all(log: AuditLog, n: int) -> None:
    for start in range(0, n, 10):  # small concurrent bursts: exercises batching, keeps the build fast
        await asyncio.gather(*(log.append(_event(i)) for i in range(start, min(start + 10, n))))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed log of N_ENTRIES entries with periodic, admin and final checkpoints."""
    home = tmp_path_factory.mktemp("audit-home")

    async def build() -> None:
        log = _log(home, checkpoint_every=50, checkpoint_interval_s=3600)
        await log.open()
        await _append_all(log, N_ENTRIES)
        await log.close()

    asyncio.run(build())
    return home


def _memory_copy(home: Path) -> sqlite3.Connection:
    base = sqlite3.connect(home / "interlock.db")
    copy = sqlite3.connect(":memory:", isolation_level=None)
    base.backup(copy)
    base.close()
    # An attacker with the file simply drops the append-only triggers first.
    for (name,) in copy.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        copy.execute(f"DROP TRIGGER {name}")
    return copy


def _verify(conn: sqlite3.Connection, home: Path) -> VerifyResult:
    head = (home / HEAD_FILE).read_bytes()
    return verify_log(SqliteAuditStore.over(conn), (home / PUBLIC_KEY_FILE).read_bytes(), head)


def test_an_intact_log_verifies(built: Path) -> None:
    store = SqliteAuditStore(built / "interlock.db")
    store.open()
    result = verify_home(store, built)
    store.close()
    assert result.ok, result
    assert result.entries == N_ENTRIES and result.unsigned == 0 and result.checkpoints > N_ENTRIES // 50


# mutations -------------------------------------------------------------------------------------


def _flip(hex_text: str, rng: random.Random) -> str:
    i = rng.randrange(len(hex_text))
    return hex_text[:i] + rng.choice([c for c in "0123456789abcdef" if c != hex_text[i]]) + hex_text[i + 1 :]


def _other_value(column: str, value: object, rng: random.Random) -> object:
    if column in ("seq", "id"):
        return rng.choice([0, -1 - rng.randrange(50), 100_000 + rng.randrange(1000)])
    if isinstance(value, float):
        return rng.choice([value + 1e-6, value - 1.0, float(int(value)), "later"])
    if isinstance(value, int):
        return rng.choice([value + 1, value - 1, str(value) + "0"])
    if column in ("prev_hash", "hash", "prev", "key", "signature"):
        return rng.choice([_flip(str(value), rng), str(value)[:-2], str(value).upper()])
    text = str(value) if value is not None else ""
    choices: list[object] = [text + "x", text[:-1], "sk-[redacted]", 7, text.replace('":', '": ')]
    if column == "actor_id":
        choices.append(None)
    return rng.choice(choices)


def _row(conn: sqlite3.Connection, table: str, key: str, value: int) -> tuple[object, ...]:
    row = conn.execute(f"SELECT * FROM {table} WHERE {key} = ?", (value,)).fetchone()
    return tuple((v, type(v)) for v in row)


def _edit(
    conn: sqlite3.Connection, table: str, key: str, key_value: int, columns: list[str], rng: random.Random
) -> bool:
    column = rng.choice(columns)
    old = conn.execute(f"SELECT {column} FROM {table} WHERE {key} = ?", (key_value,)).fetchone()[0]
    before = _row(conn, table, key, key_value)
    new = _other_value(column, old, rng)
    conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (new, key_value))
    new_key = new if column == key else key_value
    return _row(conn, table, key, new_key) != before  # type: ignore[arg-type]


def _rewrite_from(conn: sqlite3.Connection, seq: int, change: Callable[[AuditEntry], AuditEntry]) -> None:
    """What an attacker without the key does: change entry `seq`, then recompute every later hash."""
    store = SqliteAuditStore.over(conn)
    prev = store.hash_at(seq - 1) if seq > 1 else "0" * 64
    for entry in [e for e in store.entries() if e.seq >= seq]:
        moved = dataclasses.replace(change(entry) if entry.seq == seq else entry, prev_hash=prev)
        moved = dataclasses.replace(moved, hash=moved.computed_hash())
        assignments = ", ".join(f"{c} = ?" for c in ENTRY_COLUMNS[1:])
        values = [getattr(moved, c) for c in ENTRY_COLUMNS[1:]]
        conn.execute(f"UPDATE audit SET {assignments} WHERE seq = ?", (*values, entry.seq))
        prev = moved.hash


def _swap(conn: sqlite3.Connection, p: int, q: int) -> None:
    """Exchange two entries' contents, keeping the seqs in place: a reordering."""
    cols = ENTRY_COLUMNS[1:]
    rows = {s: conn.execute(f"SELECT {', '.join(cols)} FROM audit WHERE seq = ?", (s,)).fetchone() for s in (p, q)}
    for s, other in ((p, q), (q, p)):
        conn.execute(f"UPDATE audit SET {', '.join(f'{c} = ?' for c in cols)} WHERE seq = ?", (*rows[other], s))


def _mutate(conn: sqlite3.Connection, kind: str, rng: random.Random, cps: list[tuple[int, int]]) -> int | None:
    """Apply one mutation; return the highest seq the report may name, or None for a no-op draw."""
    n = N_ENTRIES
    p = rng.randint(1, n)
    if kind == "edit":
        return p if _edit(conn, "audit", "seq", p, ENTRY_COLUMNS, rng) else None
    if kind == "delete":
        conn.execute("DELETE FROM audit WHERE seq = ?", (p,))
        return p
    if kind == "swap":
        q = rng.choice([s for s in range(1, n + 1) if s != p])
        _swap(conn, p, q)
        return min(p, q)
    if kind == "truncate":
        k = rng.randrange(n)
        conn.execute("DELETE FROM audit WHERE seq > ?", (k,))
        return k + 1
    if kind == "truncate_with_checkpoints":
        k = rng.randrange(n)
        conn.execute("DELETE FROM audit WHERE seq > ?", (k,))
        conn.execute("DELETE FROM audit_checkpoints WHERE seq > ?", (k,))
        return k + 1
    if kind == "rewrite":
        _rewrite_from(conn, p, lambda e: dataclasses.replace(e, reason=e.reason + " (approved)"))
        return p
    if kind == "reorder_rewrite":
        q = rng.choice([s for s in range(1, n + 1) if s != p])
        _swap(conn, p, q)
        _rewrite_from(conn, min(p, q), lambda e: e)
        return min(p, q)
    cp_id, cp_seq = rng.choice(cps)
    if kind == "checkpoint_delete":
        conn.execute("DELETE FROM audit_checkpoints WHERE id = ?", (cp_id,))
    elif kind == "checkpoint_edit":
        if not _edit(conn, "audit_checkpoints", "id", cp_id, CHECKPOINT_COLUMNS[:-1], rng):
            return None
    else:
        sig = conn.execute("SELECT signature FROM audit_checkpoints WHERE id = ?", (cp_id,)).fetchone()[0]
        conn.execute("UPDATE audit_checkpoints SET signature = ? WHERE id = ?", (_flip(sig, rng), cp_id))
    return cp_seq + 1


KINDS = ["edit", "delete", "swap", "truncate", "truncate_with_checkpoints", "rewrite", "reorder_rewrite"]
KINDS += ["checkpoint_delete", "checkpoint_edit", "checkpoint_signature"]


@pytest.mark.slow
def test_thousands_of_random_mutations_are_all_caught(built: Path) -> None:
    rng = random.Random(20240611)
    pristine = _memory_copy(built)
    cps = [(int(i), int(s)) for i, s in pristine.execute("SELECT id, seq FROM audit_checkpoints")]
    tried: Counter[str] = Counter()
    started, cpu = time.perf_counter(), time.process_time()
    while sum(tried.values()) < MUTATIONS:
        kind = KINDS[sum(tried.values()) % len(KINDS)]
        conn = sqlite3.connect(":memory:", isolation_level=None)
        pristine.backup(conn)
        bound = _mutate(conn, kind, rng, cps)
        if bound is None:
            conn.close()
            continue
        result = _verify(conn, built)
        conn.close()
        assert not result.ok, f"{kind} was not caught"
        assert result.first_bad_seq is not None and result.first_bad_seq <= bound, (kind, bound, result)
        tried[kind] += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"\n{sum(tried.values())} mutations, all caught, in {elapsed:.1f} s ({cpu:.1f} s CPU): {dict(tried)}")


# the limits, stated as tests ---------------------------------------------------------------------


async def test_entries_after_the_last_checkpoint_are_the_documented_limit(tmp_path: Path) -> None:
    log = _log(tmp_path, checkpoint_every=1000, checkpoint_interval_s=3600)
    await log.open()
    await log.append(_event(0))  # an admin action: checkpointed at once
    for i in range(1, 6):
        await log.append(_event(i))
    copy = _memory_copy(tmp_path)
    assert _verify(copy, tmp_path).unsigned == 5
    copy.execute("DELETE FROM audit WHERE seq > 3")
    dropped = _verify(copy, tmp_path)
    assert dropped.ok and dropped.unsigned == 2  # unsigned entries can be dropped undetected
    await log.close()  # the final checkpoint covers them: now they can't
    copy = _memory_copy(tmp_path)
    copy.execute("DELETE FROM audit WHERE seq > 3")
    assert not _verify(copy, tmp_path).ok


async def test_an_admin_action_is_checkpointed_and_published_before_append_returns(tmp_path: Path) -> None:
    log = _log(tmp_path, checkpoint_every=1000, checkpoint_interval_s=3600)
    await log.open()
    await log.append(_event(1))
    entry = await log.append(AuditEvent.admin("budget.set", actor_id=None, actor_name="admin", target="team-a"))
    head = Checkpoint.from_json((tmp_path / HEAD_FILE).read_bytes())
    assert (head.seq, head.hash, head.count) == (entry.seq, entry.hash, 2)
    await log.close()


async def test_checkpoints_every_n_entries_and_after_the_interval(tmp_path: Path) -> None:
    now = [1000.0]
    log = AuditLog(SqliteAuditStore(tmp_path / "interlock.db"), tmp_path, checkpoint_every=3,
                   checkpoint_interval_s=60, clock=lambda: now[0])  # fmt: skip
    await log.open()
    heads = []
    for i in range(1, 8):
        now[0] += 1 if i != 5 else 100  # the 5th append comes after the interval has passed
        await log.append(_event(i))
        heads.append(Checkpoint.from_json((tmp_path / HEAD_FILE).read_bytes()).seq)
    assert heads == [0, 0, 3, 3, 5, 5, 5]
    log.record(_event(8))  # queued without waiting; close() still writes and covers it
    await log.close()
    assert Checkpoint.from_json((tmp_path / HEAD_FILE).read_bytes()).seq == 8


async def test_a_cancelled_append_is_still_written(tmp_path: Path) -> None:
    log = _log(tmp_path)
    await log.open()
    first = asyncio.ensure_future(log.append(_event(1)))
    await asyncio.sleep(0)
    first.cancel()
    second = await log.append(_event(2))
    await log.close()
    assert second.seq == 2 and _verify(_memory_copy(tmp_path), tmp_path).entries == 2


async def test_two_logs_sharing_one_database_keep_one_chain(tmp_path: Path) -> None:
    first, second = _log(tmp_path, checkpoint_every=7), _log(tmp_path, checkpoint_every=5)
    await first.open()
    await second.open()
    await asyncio.gather(*(log.append(_event(i)) for i in range(60) for log in (first, second)))
    await first.close()
    await second.close()
    result = _verify(_memory_copy(tmp_path), tmp_path)
    assert result.ok and result.entries == 120, result


async def test_open_refuses_to_extend_a_log_cut_behind_its_head(tmp_path: Path) -> None:
    log = _log(tmp_path)
    await log.open()
    await _append_all(log, 30)
    await log.close()
    db = tmp_path / "interlock.db"
    backup = tmp_path / "before.db"
    shutil.copy(db, backup)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER audit_checkpoints_no_delete")
    conn.execute("DELETE FROM audit_checkpoints WHERE id = (SELECT max(id) FROM audit_checkpoints)")
    conn.close()
    with pytest.raises(AuditIntegrityError, match="checkpoints were removed"):
        await _log(tmp_path).open()
    shutil.copy(backup, db)
    (tmp_path / HEAD_FILE).unlink()
    with pytest.raises(AuditIntegrityError, match="missing"):
        await _log(tmp_path).open()


async def test_files_under_home_and_the_pinned_fingerprint(tmp_path: Path) -> None:
    log = _log(tmp_path)
    await log.open()
    await log.append(_event(3))
    await log.close()
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    store = SqliteAuditStore(tmp_path / "interlock.db")
    store.open()
    fp = verify_home(store, tmp_path).fingerprint
    assert verify_home(store, tmp_path, expect_fingerprint=fp).ok
    assert not verify_home(store, tmp_path, expect_fingerprint="0" * 64).ok
    (tmp_path / HEAD_FILE).unlink()
    missing = verify_home(store, tmp_path)
    assert not missing.ok and "head file is missing" in missing.reason
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("UPDATE audit SET reason = 'ok'")
    store.close()


# what entries may hold ---------------------------------------------------------------------------


def test_api_keys_are_redacted_and_metadata_is_typed() -> None:
    event = AuditEvent.denial(
        "chat", actor_id="key_1", actor_name="app sk-il-AbC123", reason="bad key sk-ant-api03-xyz",
        target="risk-model", header="Bearer sk-proj-abc_DEF-123", n=3, ok=False, share=0.5,
    )  # fmt: skip
    assert "sk-[redacted]" in event.reason and "xyz" not in event.reason and "AbC123" not in event.actor_name
    assert event.target == "risk-model" and event.metadata == {
        "header": "Bearer sk-[redacted]", "n": 3, "ok": False, "share": 0.5,
    }  # fmt: skip
    assert len(AuditEvent.denial("a", actor_id=None, actor_name="x", reason="y" * 10_000).reason) == 512
    with pytest.raises(TypeError):
        AuditEvent.admin("a", actor_id=None, actor_name="x", prompt=["hello"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AuditEvent.admin("a", actor_id=None, actor_name="x", big=2**70)
    with pytest.raises(TypeError):
        AuditEvent.admin("a", actor_id=None, actor_name="x", nan=float("nan"))
    with pytest.raises(ValueError):
        AuditEvent("a", "maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AuditEvent("a", "deny", metadata={"sk-live-abcdef": 1})


def test_the_canonical_form_is_pinned() -> None:
    event = AuditEvent.denial("chat", actor_id="key_1", actor_name="app", reason="r", target="t", b=1, a="x")
    entry = AuditEntry.chain(dataclasses.replace(event, ts=1700000000.25), 1, "0" * 64)
    assert entry.metadata == '{"a":"x","b":1}'
    expected = orjson.dumps(
        {"v": 1, "seq": 1, "ts": 1700000000.25, "actor_id": "key_1", "actor_name": "app", "action": "chat",
         "target": "t", "decision": "deny", "reason": "r", "metadata": '{"a":"x","b":1}', "prev": "0" * 64},
        option=orjson.OPT_SORT_KEYS,
    )  # fmt: skip
    assert entry.hash == hashlib.sha256(expected).hexdigest()
