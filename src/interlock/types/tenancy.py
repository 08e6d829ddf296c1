"""Whose request is running, as far as shared caches of prompt state are concerned.

A prompt whose prefix is already in a cache is answered sooner: its time to first token tells the
caller that someone sent a prompt starting the same way, and, token by token, what it said (a timing
side channel across tenants; vLLM's `cache_salt` and OpenAI's per-organisation prompt caches answer
the same threat). So the embedded engine reuses KV cells only between requests of one *partition*:
the gateway sets `CACHE_PARTITION` for each request from its principal and `[engine] cache_scope`
(`partition_of`), and the local provider hands it to the engine with the job. Code that calls a
provider outside a gateway request (evaluations, warm-ups) runs in the default partition, "".
An OpenAI-compatible upstream with its own prefix cache (vLLM, and services built on it) gets the same
separation with the deployment option `cache_salt = true`: each request carries `cache_salt_of` its
partition, which replaces any `cache_salt` the client sent (else a client could name another's).
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar
from typing import Literal

CacheScope = Literal["key", "team", "org", "shared"]

CACHE_PARTITION: ContextVar[str] = ContextVar("interlock_cache_partition", default="")


def partition_of(scope: CacheScope, key_id: str | None, team_id: str | None, org_id: str | None, name: str) -> str:
    """The partition of a caller: its key's, its team's or its organisation's (each falling back to the
    narrower one the caller has), or one for everybody with `shared`. `name` stands in for a caller with
    no key (the admin key)."""
    if scope == "shared":
        return ""
    if scope == "org" and org_id:
        return "org:" + org_id
    if scope in ("org", "team") and team_id:
        return "team:" + team_id
    return "key:" + (key_id or name)


def cache_salt_of(partition: str) -> str | None:
    """The `cache_salt` an upstream gets for `partition`: a digest (no key ids leave the building), or None
    for the shared partition."""
    if not partition:
        return None
    return hashlib.sha256(b"interlock-cache-salt\x00" + partition.encode()).hexdigest()[:32]
