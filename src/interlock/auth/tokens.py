"""Short-lived agent tokens: Ed25519-signed claims (token id, agent, its key, owner, expiry), verified offline.

A token is `sk-il-at.<claims>.<signature>`, both parts base64url without padding; the claims are JSON, the
signature covers `interlock-agent-token.v1.` + the claims' text. It authenticates as the agent's key (the same
principal: its budgets, rate limits and models), so it is refused whenever that key would be, and also once
it has expired (401 `expired_agent_token`) or been revoked (401 `revoked_agent_token`; revocations live in
the store and reach every process with the key refresh). The signing key is `<home>/agent_token_key`
(PEM, created with mode 0600 on first use); replicas that accept each other's tokens share that file.
The token itself is never stored: only its id and claims, for listing and revocation.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key

from interlock.errors import Unauthorized

TOKEN_PREFIX = "sk-il-at."  # noqa: S105 -- a dot never occurs in a key (`sk-il-` + base64url), so the two cannot be confused
KEY_FILE = "agent_token_key"
_CONTEXT = b"interlock-agent-token.v1."


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a token says: which token, for which agent and key, whose, until when."""

    token_id: str
    agent_id: str
    key_id: str
    owner_id: str
    issued_at: float
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_signing_key(home: Path) -> Ed25519PrivateKey:
    """The token signing key under `home`, created (mode 0600, exclusively) on first use."""
    path = home / KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


class TokenSigner:
    """Mints and verifies agent tokens with one Ed25519 key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._public: Ed25519PublicKey = key.public_key()

    @classmethod
    def at(cls, home: Path) -> TokenSigner:
        """The signer whose key lives under `home`."""
        return cls(load_signing_key(home))

    def mint(self, claims: TokenClaims) -> str:
        """The token for `claims` (shown once; it is not stored)."""
        c = claims
        body = orjson.dumps(
            {"v": 1, "tid": c.token_id, "agt": c.agent_id, "key": c.key_id, "own": c.owner_id,
             "iat": c.issued_at, "exp": c.expires_at},
        )  # fmt: skip
        text = _b64(body)
        return f"{TOKEN_PREFIX}{text}.{_b64(self._key.sign(_CONTEXT + text.encode()))}"

    def verify(self, token: str) -> TokenClaims:
        """The claims of a token this key signed (expiry is the caller's to check); 401 if it is not one."""
        bad = Unauthorized("invalid agent token: not one this gateway signed", code="invalid_agent_token")
        if not token.startswith(TOKEN_PREFIX) or token.count(".") != 2:
            raise bad
        text, _, sig = token[len(TOKEN_PREFIX) :].partition(".")
        try:
            self._public.verify(_unb64(sig), _CONTEXT + text.encode())
            data = orjson.loads(_unb64(text))
            return TokenClaims(
                str(data["tid"]), str(data["agt"]), str(data["key"]), str(data["own"]),
                float(data["iat"]), float(data["exp"]),
            )  # fmt: skip
        except (InvalidSignature, binascii.Error, ValueError, KeyError, TypeError):
            raise bad from None
