"""Agents' tool policies, read from the authentication directory and parsed once per change."""

from __future__ import annotations

from interlock.agents.policy import ToolPolicy
from interlock.auth.agents import AgentDirectory


class Policies:
    """`policies(agent_id)`: the agent's parsed `ToolPolicy` (None: unknown agent)."""

    def __init__(self, directory: AgentDirectory) -> None:
        self._directory = directory
        self._parsed: dict[str, tuple[str, ToolPolicy]] = {}

    def __call__(self, agent_id: str) -> ToolPolicy | None:
        agent = self._directory.agents.get(agent_id)
        if agent is None:
            return None
        cached = self._parsed.get(agent_id)
        if cached is None or cached[0] != agent.policy:
            cached = self._parsed[agent_id] = (agent.policy, ToolPolicy.model_validate_json(agent.policy))
        return cached[1]
