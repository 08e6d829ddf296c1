"""Tool pinning (rug-pull defence): a tool's definition is hashed when an admin approves its server.

The hash covers what the model reads and what the call carries: the upstream's tool name, description and
input schema, as canonical JSON (sorted keys, no whitespace). A live definition is *approved* when a pin of
the same server and name has its hash; *changed* when the pin's hash differs (the server altered it after
approval: disabled until re-approved, audited as `mcp.tool_changed`); *unapproved* when there is no pin (a
new or renamed tool). Only approved tools are listed to agents or called.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

PinStatus = Literal["approved", "changed", "unapproved"]


def definition_hash(name: str, description: str | None, input_schema: Any) -> str:
    """SHA-256 of the canonical definition."""
    canonical = json.dumps(
        {"name": name, "description": description or "", "inputSchema": input_schema},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def status(live_hash: str, pinned_hash: str | None) -> PinStatus:
    """The state of a live definition against its pin (None: no pin)."""
    if pinned_hash is None:
        return "unapproved"
    return "approved" if pinned_hash == live_hash else "changed"
