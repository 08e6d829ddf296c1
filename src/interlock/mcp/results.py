"""What the MCP gateway remembers of tool results: per agent, the recent results (untrusted for provenance)
and the trusted text of its model requests, bounded in count and age; and the text of a result."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field

import mcp_types as types

from interlock.agents.provenance import MIN_CHARS, leaves

MAX_RESULT_CHARS = 64 * 1024  # of each result kept for provenance


@dataclass(slots=True)
class RecentResults:
    """Per agent, bounded in number and age: its recent MCP tool results (untrusted) and the trusted text
    (system and user messages) of its recent model requests, the only trusted text an MCP call can refer to."""

    size: int
    ttl_s: float
    by_agent: dict[str, deque[tuple[float, str]]] = field(default_factory=dict)
    said_by_agent: dict[str, deque[tuple[float, str]]] = field(default_factory=dict)

    def _add(self, where: dict[str, deque[tuple[float, str]]], agent_id: str, text: str) -> None:
        if self.size == 0 or not text:
            return
        where.setdefault(agent_id, deque(maxlen=self.size)).append((time.time(), text[:MAX_RESULT_CHARS]))

    def _texts(self, where: dict[str, deque[tuple[float, str]]], agent_id: str) -> list[str]:
        found = where.get(agent_id)
        if not found:
            return []
        cutoff = time.time() - self.ttl_s
        while found and found[0][0] < cutoff:
            found.popleft()
        return [t for _, t in found]

    def add(self, agent_id: str, text: str) -> None:
        """Keep `text` (a tool result) as untrusted content of the agent."""
        self._add(self.by_agent, agent_id, text)

    def texts(self, agent_id: str) -> list[str]:
        """The agent's unexpired results, oldest first."""
        return self._texts(self.by_agent, agent_id)

    def add_trusted(self, agent_id: str, text: str) -> None:
        """Keep `text` (the trusted messages of a model request) as trusted content of the agent."""
        if not any(t == text for t in self._texts(self.said_by_agent, agent_id)[-4:]):  # a loop resends them all
            self._add(self.said_by_agent, agent_id, text)

    def trusted_texts(self, agent_id: str) -> list[str]:
        """The agent's unexpired trusted texts, oldest first."""
        return self._texts(self.said_by_agent, agent_id)


def without_arguments(text: str, args: object) -> str:
    """`text` without the call's own argument values: a result that echoes them introduced none of them."""
    for value in sorted(leaves(args, None), key=len, reverse=True):
        if len(value) >= MIN_CHARS:
            text = text.replace(value, " ")
    return text


def error_result(text: str) -> types.CallToolResult:
    """An error result the agent reads as the tool's answer (a refusal, a failure), saying why."""
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


def result_text(result: types.CallToolResult) -> str:
    """The text a result carries (text blocks and structured content), as the agent will read it."""
    parts = [b.text for b in result.content if isinstance(b, types.TextContent)]
    if result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)
