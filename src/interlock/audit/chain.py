"""The audit chain: typed entries, their canonical form and hash, signed checkpoints, offline verification.

Entries have typed fields only and no field for prompt text. On creation every string (actor, action, target,
reason, metadata values) has each `sk-...` token replaced by `sk-[redacted]` and is cut to 512 characters;
metadata keys must match `[A-Za-z0-9_.-]{1,64}` and not look like a key; values must be str, bool, int
(64-bit) or finite float. Anything else raises TypeError or ValueError at the caller.

Canonical form: `canonical(d) = orjson.dumps(d, option=OPT_SORT_KEYS)`, i.e. UTF-8 JSON, keys sorted, no
whitespace, floats in shortest round-trip form. An entry's `metadata` is stored as `canonical(metadata)`
text. Its hash is the lowercase hex SHA-256 of `canonical({"v": 1, "seq", "ts", "actor_id", "actor_name",
"action", "target", "decision", "reason", "metadata", "prev"})`, with `metadata` the stored JSON text (a
string) and `prev` the previous entry's hash (64 zeros for seq 1). Seqs run 1, 2, 3, ... without gaps.

A checkpoint's payload is `{"v": 1, "id", "ts", "seq", "hash", "count", "prev", "key"}`: the head it covers
(`seq`, that entry's `hash`, `count` = entries so far = `seq`), `prev` = SHA-256 of the previous checkpoint's
canonical payload (64 zeros for id 1), `key` = hex SHA-256 of the raw 32-byte public key. `signature` is
Ed25519 over `b"interlock-audit-checkpoint-v1\\n" + canonical(payload)`, as hex. Checkpoint ids run 1, 2, 3, ...;
checkpoint 1 covers seq 0 (hash 64 zeros). The head file holds `canonical` of the latest checkpoint's fields.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

GENESIS = "0" * 64
MAX_TEXT = 512
_SIGNING_CONTEXT = b"interlock-audit-checkpoint-v1\n"
_SECRET = re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]+")
_META_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

MetaValue = str | int | float | bool
Decision = Literal["allow", "deny"]


def canonical(value: Mapping[str, object]) -> bytes:
    """The canonical serialisation that hashes and signatures cover."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def redact(text: str) -> str:
    """`text` with anything that looks like an API key replaced, cut to MAX_TEXT characters."""
    return _SECRET.sub("sk-[redacted]", text)[:MAX_TEXT]


def _clean_metadata(metadata: Mapping[str, object]) -> dict[str, MetaValue]:
    out: dict[str, MetaValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not _META_KEY.fullmatch(key) or _SECRET.search(key):
            raise ValueError(f"audit metadata key {key!r}: use [A-Za-z0-9_.-], at most 64 characters, no keys")
        if isinstance(value, str):
            out[key] = redact(value)
            continue
        int64 = isinstance(value, int) and -(2**63) <= value < 2**63
        if not (isinstance(value, bool) or int64 or (isinstance(value, float) and math.isfinite(value))):
            # NaN and infinity have no JSON form; wider ints do not round-trip through orjson.
            raise TypeError(f"audit metadata {key!r}: {type(value).__name__} is not str, bool, int64 or finite float")
        out[key] = value  # type: ignore[assignment]
    return out


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing to record, before it has a place in the chain; strings are redacted on creation."""

    action: str
    decision: Decision
    actor_id: str | None = None
    actor_name: str = ""
    target: str = ""
    reason: str = ""
    metadata: Mapping[str, MetaValue] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    urgent: bool = False
    """Covered by a signed checkpoint before `append` returns (admin actions). Not part of the entry or its hash:
    per-request verdicts leave it False and are covered by the next periodic checkpoint."""

    def __post_init__(self) -> None:
        if self.decision not in ("allow", "deny"):
            raise ValueError(f"audit decision must be 'allow' or 'deny', not {self.decision!r}")
        for name in ("action", "actor_name", "target", "reason", "actor_id"):
            value = getattr(self, name)
            if value is None and name == "actor_id":
                continue
            if not isinstance(value, str):
                raise TypeError(f"audit {name} must be a string")
            object.__setattr__(self, name, redact(value))
        if not isinstance(self.ts, float | int) or not math.isfinite(self.ts):
            raise ValueError("audit ts must be a finite number")
        object.__setattr__(self, "ts", float(self.ts))
        object.__setattr__(self, "metadata", _clean_metadata(self.metadata))

    @classmethod
    def admin(
        cls, action: str, *, actor_id: str | None, actor_name: str, target: str = "", **metadata: MetaValue
    ) -> AuditEvent:
        """An admin action that was carried out (checkpointed before `append` returns)."""
        return cls(action, "allow", actor_id, actor_name, target, "", metadata, urgent=True)

    @classmethod
    def denial(
        cls, action: str, *, actor_id: str | None, actor_name: str, reason: str, target: str = "", **metadata: MetaValue
    ) -> AuditEvent:
        """A request or admin call that policy denied."""
        return cls(action, "deny", actor_id, actor_name, target, reason, metadata)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One stored entry: the event's fields, its seq, the previous entry's hash and its own."""

    seq: int
    ts: float
    actor_id: str | None
    actor_name: str
    action: str
    target: str
    decision: str
    reason: str
    metadata: str
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        """The hash the entry's fields and `prev_hash` call for (raises TypeError on mistyped fields)."""
        fields = {
            "v": 1, "seq": self.seq, "ts": self.ts, "actor_id": self.actor_id, "actor_name": self.actor_name,
            "action": self.action, "target": self.target, "decision": self.decision, "reason": self.reason,
            "metadata": self.metadata, "prev": self.prev_hash,
        }  # fmt: skip
        return hashlib.sha256(canonical(fields)).hexdigest()

    def metadata_dict(self) -> dict[str, MetaValue]:
        """The metadata, decoded."""
        value: dict[str, MetaValue] = orjson.loads(self.metadata)
        return value

    @classmethod
    def chain(cls, event: AuditEvent, seq: int, prev_hash: str) -> AuditEntry:
        """The entry for `event` at `seq`, after the entry whose hash is `prev_hash`."""
        meta = canonical(event.metadata).decode()
        draft = cls(seq, event.ts, event.actor_id, event.actor_name, event.action, event.target, event.decision,
                    event.reason, meta, prev_hash, "")  # fmt: skip
        return dataclasses.replace(draft, hash=draft.computed_hash())


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw public key: how checkpoints name their key."""
    return hashlib.sha256(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that entry `seq` has hash `hash` and the log then held `count` entries."""

    id: int
    ts: float
    seq: int
    hash: str
    count: int
    prev: str
    key: str
    signature: str

    def payload(self) -> bytes:
        """The canonical bytes that are signed (everything but the signature)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "signature"}
        return canonical({"v": 1, **fields})

    def digest(self) -> str:
        """What the next checkpoint's `prev` must be."""
        return hashlib.sha256(self.payload()).hexdigest()

    def signed_by(self, public_key: Ed25519PublicKey) -> bool:
        """Whether the signature is valid for this payload under `public_key`, naming that key."""
        try:
            public_key.verify(bytes.fromhex(self.signature), _SIGNING_CONTEXT + self.payload())
        except (InvalidSignature, ValueError, TypeError):
            return False
        return self.key == fingerprint(public_key)

    def to_json(self) -> bytes:
        """The head file's content."""
        return canonical(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> Checkpoint:
        """Parse a head file (raises ValueError)."""
        value = orjson.loads(data)
        if not isinstance(value, dict) or set(value) != {f.name for f in dataclasses.fields(cls)}:
            raise ValueError("not a checkpoint")
        return cls(**value)

    @classmethod
    def sign(cls, key: Ed25519PrivateKey, previous: Checkpoint | None, seq: int, hash_: str, ts: float) -> Checkpoint:
        """The checkpoint after `previous` covering entry `seq` with hash `hash_`."""
        prev_id, prev_digest = (previous.id, previous.digest()) if previous else (0, GENESIS)
        draft = cls(prev_id + 1, ts, seq, hash_, seq, prev_digest, fingerprint(key.public_key()), "")
        return dataclasses.replace(draft, signature=key.sign(_SIGNING_CONTEXT + draft.payload()).hex())


class AuditStore(Protocol):
    """Where entries and checkpoints live; every method blocks, and one thread uses it at a time."""

    def open(self) -> None: ...
    def close(self) -> None: ...
    def transaction(self) -> AbstractContextManager[None]: ...  # exclusive, also across processes
    def snapshot(self) -> AbstractContextManager[None]: ...  # one consistent read
    def tail(self) -> tuple[int, str]: ...  # (seq, hash) of the newest entry; (0, GENESIS) when empty
    def hash_at(self, seq: int) -> str | None: ...
    def insert_entries(self, entries: Sequence[AuditEntry]) -> None: ...
    def insert_checkpoint(self, checkpoint: Checkpoint) -> None: ...
    def last_checkpoint(self) -> Checkpoint | None: ...
    def checkpoints(self) -> Iterator[Checkpoint]: ...  # by id
    def entries(self) -> Iterator[AuditEntry]: ...  # by seq
    def recent(self, limit: int) -> list[AuditEntry]: ...  # newest first


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What `verify_log` found: counts when intact, else the first entry not backed by a signature and why."""

    ok: bool
    entries: int
    checkpoints: int
    unsigned: int  # intact entries after the last checkpoint: protected by the chain only
    fingerprint: str
    first_bad_seq: int | None = None
    checkpoint_id: int | None = None
    reason: str = ""


def _entry_problem(entry: AuditEntry, expected: int, prev: str) -> str | None:
    if entry.seq != expected:
        return f"entry {expected} is missing (the next stored entry is {entry.seq})"
    if entry.prev_hash != prev:
        return f"prev_hash does not match the hash of entry {expected - 1}"
    try:
        ok = entry.computed_hash() == entry.hash
    except TypeError:
        return "a field has the wrong type"
    return None if ok else "hash does not match the entry's contents"


def _checkpoint_problem(
    cp: Checkpoint, i: int, pub: Ed25519PublicKey, previous: Checkpoint | None, hashes: dict[int, str], valid: int
) -> tuple[int, str] | None:
    """Why checkpoint `i` is not acceptable after `previous`, with the first entry it leaves unbacked."""
    last_seq = previous.seq if previous else 0
    if cp.id != i:
        return last_seq + 1, f"checkpoint {i} is missing"
    if not cp.signed_by(pub):
        return last_seq + 1, f"checkpoint {i} has an invalid signature"
    if cp.prev != (previous.digest() if previous else GENESIS) or cp.seq < last_seq or cp.count != cp.seq:
        return last_seq + 1, f"checkpoint {i} does not follow checkpoint {i - 1}"
    if cp.seq > valid:
        return valid + 1, f"entries after {valid} are missing or broken (checkpoint {i} covers {cp.seq})"
    if hashes.get(cp.seq) != cp.hash:
        return last_seq + 1, f"entries {last_seq + 1}..{cp.seq} do not match signed checkpoint {i}"
    return None


def verify_log(
    store: AuditStore, public_key_pem: bytes | None, head: bytes | None, *, expect_fingerprint: str | None = None
) -> VerifyResult:
    """Check every entry, checkpoint and the head against each other (read the head file before calling)."""
    pub: Ed25519PublicKey | None = None
    if public_key_pem is not None:
        with contextlib.suppress(ValueError):
            loaded = load_pem_public_key(public_key_pem)
            pub = loaded if isinstance(loaded, Ed25519PublicKey) else None
    fp = fingerprint(pub) if pub else ""
    bad: list[tuple[int | None, int | None, str]] = []  # (first unbacked seq or None, checkpoint id, reason)
    head_cp: Checkpoint | None = None
    try:
        head_cp = Checkpoint.from_json(head) if head is not None else None
    except (ValueError, TypeError):
        bad.append((None, None, "the head file is unreadable"))
    with store.snapshot():
        cps = list(store.checkpoints())
        anchors = {cp.seq for cp in cps} | ({head_cp.seq} if head_cp else set())
        hashes: dict[int, str] = {0: GENESIS}
        expected, prev = 1, GENESIS
        for entry in store.entries():
            problem = _entry_problem(entry, expected, prev)
            if problem:
                bad.append((expected, None, problem))
                break
            if entry.seq in anchors:
                hashes[entry.seq] = entry.hash
            prev, expected = entry.hash, expected + 1
    valid = expected - 1
    if expect_fingerprint and fp != expect_fingerprint:
        bad.append((None, None, f"the public key is {fp or 'missing'}, not the pinned {expect_fingerprint}"))
    last: Checkpoint | None = None
    if pub is None:
        if cps or head_cp or valid:
            bad.append((None, None, "the public key is missing or not an Ed25519 public key"))
    else:
        for i, cp in enumerate(cps, start=1):
            found = _checkpoint_problem(cp, i, pub, last, hashes, valid)
            if found:
                bad.append((found[0], i, found[1]))
                break
            last = cp
        if head is None and (cps or valid):
            bad.append((None, None, "the head file is missing: removal of the newest entries cannot be ruled out"))
        elif head_cp is not None and not head_cp.signed_by(pub):
            bad.append((None, None, "the head file has an invalid signature"))
        elif head_cp is not None and head_cp.id > len(cps):
            what = "entries" if head_cp.seq > valid else "checkpoints"
            first = valid + 1 if head_cp.seq > valid else (last.seq if last else 0) + 1
            bad.append((first, len(cps) + 1, f"{what} were removed: the head file covers checkpoint {head_cp.id}"))
        elif head_cp is not None and cps[head_cp.id - 1] != head_cp:
            bad.append((None, head_cp.id, f"checkpoint {head_cp.id} differs from the head file"))
    good, unsigned = (last.id, valid - last.seq) if last else (0, valid)
    if not bad:
        return VerifyResult(True, valid, good, unsigned, fp)
    seq, cp_id, reason = min(bad, key=lambda b: math.inf if b[0] is None else b[0])
    return VerifyResult(False, valid, good, max(unsigned, 0), fp, seq, cp_id, reason)
