"""Tamper-evident audit log: admin actions and denials, hash-chained and checkpointed with an Ed25519 key.

Recorded: every admin action (decision "allow": key created or revoked, budget changed, config reloaded)
and every policy decision that denies a request (decision "deny"). Fields, redaction and the canonical form
that hashes and signatures cover are in `audit_chain`. The key is `<home>/audit_ed25519.pem` (mode 0600,
created on first use) with its public half in `audit_ed25519.pub`.

Checkpoints: checkpoint 1 (seq 0) is written when the log is created; then one is written once
`checkpoint_every` entries are uncovered, on the first append `checkpoint_interval_s` after the last one and
by a timer every `checkpoint_interval_s`, for every admin action before its `append` returns, and at
`close()`. Each is committed (synchronous=FULL) and then copied to `<home>/audit_head.json` (fsync, rename).

Guarantee, against an attacker who can rewrite the database but cannot read the private key:
- any edit, insertion, deletion or reordering of entries covered by a checkpoint, and any edit or deletion
  of a checkpoint, is reported by `verify_log`, naming the first entry no longer backed by a signature;
- entries after the last checkpoint (at most `checkpoint_every - 1` denials, or `checkpoint_interval_s`
  seconds of them; never an admin action whose `append` has returned) are protected by the chain only:
  the attacker can rewrite, drop or add such entries undetectably, since nothing signed covers them yet
  (and the next checkpoint signs whatever chain it finds);
- removing covered entries or checkpoints from the end is caught because the head file is ahead of the
  table, and a missing head file is itself a failure. An attacker who can also write the head file can roll
  the log back to any earlier checkpoint (a head is a copy of a checkpoint row) but cannot change what stays;
  verifying against a head copied off the host (`head_path`) closes that.
Holding the private key, or replacing the key pair and head file, forges anything: pin the fingerprint when
verifying (`expect_fingerprint`) to catch a replaced key pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from interlock.audit.chain import (
    GENESIS,
    AuditEntry,
    AuditEvent,
    AuditStore,
    Checkpoint,
    MetaValue,
    VerifyResult,
    canonical,
    fingerprint,
    redact,
    verify_log,
)
from interlock.background import Periodic

__all__ = [
    "GENESIS",
    "HEAD_FILE",
    "KEY_FILE",
    "PUBLIC_KEY_FILE",
    "AuditEntry",
    "AuditEvent",
    "AuditIntegrityError",
    "AuditLog",
    "AuditStore",
    "Checkpoint",
    "MetaValue",
    "VerifyResult",
    "canonical",
    "fingerprint",
    "load_or_create_key",
    "redact",
    "verify_home",
    "verify_log",
]

log = logging.getLogger(__name__)

KEY_FILE = "audit_ed25519.pem"
PUBLIC_KEY_FILE = "audit_ed25519.pub"
HEAD_FILE = "audit_head.json"
P = ParamSpec("P")
R = TypeVar("R")


class AuditIntegrityError(Exception):
    """The database, the head file and the key disagree; the log is not extended until someone looks."""


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    # A rename or link is durable only once its directory is synced.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_create_key(home: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The signing key under `home` (created mode 0600 with its .pub if absent), and whether it was created."""
    path, created = home / KEY_FILE, False
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.new")
        _write_atomic(tmp, pem, 0o600)
        try:
            os.link(tmp, path)  # atomic and exclusive: two first starts end up sharing one key
            created = True
            _fsync_dir(home)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditIntegrityError(f"{path} is not an Ed25519 private key")
    pub_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    if _read(home / PUBLIC_KEY_FILE) != pub_pem:
        _write_atomic(home / PUBLIC_KEY_FILE, pub_pem)
    return key, created


def verify_home(
    store: AuditStore, home: Path, *, head_path: Path | None = None, expect_fingerprint: str | None = None
) -> VerifyResult:
    """`verify_log` with the public key and head file under `home` (or an off-host copy of the head)."""
    head = _read(head_path or home / HEAD_FILE)  # read before the snapshot, so its checkpoint is in it
    return verify_log(store, _read(home / PUBLIC_KEY_FILE), head, expect_fingerprint=expect_fingerprint)


def _log_failure(done: Future[AuditEntry]) -> None:
    if done.exception() is not None:
        log.error("audit entry not written: %s", done.exception())


class AuditLog:
    """Appends entries and signs checkpoints on one writer thread, off the event loop."""

    def __init__(
        self,
        store: AuditStore,
        home: Path,
        *,
        checkpoint_every: int = 100,
        checkpoint_interval_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._home = home
        self._every = max(1, checkpoint_every)
        self._interval = checkpoint_interval_s
        self._clock = clock
        self._key: Ed25519PrivateKey | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._timer = Periodic(
            self.checkpoint,
            checkpoint_interval_s,
            name="interlock-audit-checkpoints",
            failure="audit checkpoint failed",
        )
        self._lock = threading.Lock()
        self._pending: list[tuple[AuditEvent, Future[AuditEntry]]] = []

    async def open(self) -> None:
        """Open the store, load or create the key, check the head file, and start the checkpoint timer."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="interlock-audit")
        try:
            await self._run(self._open_sync)
        except BaseException:
            self._executor.shutdown()
            self._executor = None
            raise
        self._timer.start()  # none with an interval of 0: checkpoints then come by count, admin action and close

    async def append(self, event: AuditEvent) -> AuditEntry:
        """Write `event` as the next entry; an admin action is also checkpointed before this returns."""
        return await asyncio.wrap_future(self._enqueue(event))

    def record(self, event: AuditEvent) -> None:
        """Queue `event` without waiting for the commit (for the request path); a failure is logged."""
        self._enqueue(event).add_done_callback(_log_failure)

    def _enqueue(self, event: AuditEvent) -> Future[AuditEntry]:
        executor = self._require_open()
        done: Future[AuditEntry] = Future()
        with self._lock:
            self._pending.append((event, done))
        # Each submit drains everything pending, so a burst of denials is committed in one transaction.
        executor.submit(self._drain)
        return done

    async def checkpoint(self) -> Checkpoint | None:
        """Sign a checkpoint now if entries were added since the last one; return it."""
        return await self._run(self._checkpoint_sync)

    async def recent(self, limit: int = 50) -> list[AuditEntry]:
        """The newest entries, newest first."""
        return await self._run(self._store.recent, limit)

    async def close(self) -> None:
        """Write a final checkpoint and close the store."""
        if self._executor is None:
            return
        await self._timer.close()
        try:
            await self._run(self._checkpoint_sync)
        finally:
            executor, self._executor = self._executor, None
            executor.submit(self._store.close)
            await asyncio.to_thread(executor.shutdown)

    # writer thread ---------------------------------------------------------------------------

    def _require_open(self) -> ThreadPoolExecutor:
        if self._executor is None:
            raise RuntimeError("the audit log is not open")
        return self._executor

    async def _run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.wrap_future(self._require_open().submit(fn, *args, **kwargs))

    def _open_sync(self) -> None:
        self._store.open()
        try:
            self._load()
        except BaseException:
            self._store.close()
            raise

    def _load(self) -> None:
        self._key, created = load_or_create_key(self._home)
        pub = self._key.public_key()
        raw = _read(self._home / HEAD_FILE)
        try:
            head = Checkpoint.from_json(raw) if raw is not None else None
        except (ValueError, TypeError):
            raise AuditIntegrityError(f"{self._home / HEAD_FILE} is unreadable") from None
        if head is not None and not head.signed_by(pub):
            raise AuditIntegrityError(f"{self._home / HEAD_FILE} is not signed by {KEY_FILE}")
        with self._store.transaction():
            last = self._store.last_checkpoint()
            if last is None:
                if head is not None:
                    raise AuditIntegrityError(f"the head file covers checkpoint {head.id}; the database has none")
                if not created or self._store.tail()[0]:
                    raise AuditIntegrityError(
                        f"{KEY_FILE} exists but there is no checkpoint and no head file: the log was deleted, or "
                        f"the first start crashed (then move the audit_ed25519.* files away to start a new log)"
                    )
                last = Checkpoint.sign(self._key, None, 0, GENESIS, self._clock())
                self._store.insert_checkpoint(last)
            else:
                self._check_consistent(last, head)
        self._publish(last)

    def _check_consistent(self, last: Checkpoint, head: Checkpoint | None) -> None:
        """Refuse to extend a log whose newest signed state was cut off: extending it would hide that."""
        assert self._key is not None
        hint = "; run `interlock audit verify`"
        if not last.signed_by(self._key.public_key()):
            raise AuditIntegrityError(f"checkpoint {last.id} is not signed by {KEY_FILE}{hint}")
        if head is None and (last.id, last.seq) != (1, 0):
            raise AuditIntegrityError(f"{HEAD_FILE} is missing{hint}")
        if head is not None and (head.id > last.id or (head.id == last.id and head != last)):
            raise AuditIntegrityError(f"checkpoints were removed: {HEAD_FILE} covers {head.id}{hint}")
        seq, _ = self._store.tail()
        if seq < last.seq or (last.seq and self._store.hash_at(last.seq) != last.hash):
            raise AuditIntegrityError(f"entries up to {last.seq} do not match checkpoint {last.id}{hint}")

    def _drain(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        # An append whose caller was cancelled is still written: the event happened all the same.
        waiting = {done for _, done in batch if done.set_running_or_notify_cancel()}
        try:
            entries, checkpoint = self._write([event for event, _ in batch])
            if checkpoint is not None:
                self._publish(checkpoint)
        except BaseException as exc:
            for done in waiting:
                done.set_exception(exc)
            return
        for (_, done), entry in zip(batch, entries, strict=True):
            if done in waiting:
                done.set_result(entry)

    def _write(self, events: list[AuditEvent]) -> tuple[list[AuditEntry], Checkpoint | None]:
        now = self._clock()
        with self._store.transaction():
            # Read the tail inside the write lock: another process may share this log.
            seq, prev = self._store.tail()
            entries = []
            for event in events:
                seq += 1
                entries.append(AuditEntry.chain(event, seq, prev))
                prev = entries[-1].hash
            self._store.insert_entries(entries)
            urgent = any(e.urgent for e in events)
            return entries, self._maybe_checkpoint(seq, prev, now, force=urgent)

    def _checkpoint_sync(self) -> Checkpoint | None:
        with self._store.transaction():
            seq, prev = self._store.tail()
            checkpoint = self._maybe_checkpoint(seq, prev, self._clock(), force=True)
        if checkpoint is not None:
            self._publish(checkpoint)
        return checkpoint

    def _maybe_checkpoint(self, seq: int, hash_: str, now: float, *, force: bool) -> Checkpoint | None:
        assert self._key is not None
        last = self._store.last_checkpoint()
        assert last is not None, "opened logs have checkpoint 1"
        if seq <= last.seq:
            return None
        if force or seq - last.seq >= self._every or 0 < self._interval <= now - last.ts:
            checkpoint = Checkpoint.sign(self._key, last, seq, hash_, now)
            self._store.insert_checkpoint(checkpoint)
            return checkpoint
        return None

    def _publish(self, checkpoint: Checkpoint) -> None:
        path = self._home / HEAD_FILE
        with contextlib.suppress(ValueError, TypeError):
            current = _read(path)
            # Another process sharing the log may have published a newer checkpoint already.
            if current is not None and Checkpoint.from_json(current).id >= checkpoint.id:
                return
        _write_atomic(path, checkpoint.to_json())
