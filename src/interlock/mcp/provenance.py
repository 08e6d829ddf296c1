"""Provenance across the two doors: MCP tool results count as untrusted in the agent's later model requests,
and the user's words in its model requests count as trusted for its MCP calls.

An agent reads an MCP tool result (an e-mail, a web page) and sends it to a model; the model answers with a
tool call. The agent tool-call policy (`agents.hook.ToolPolicyHook`) splits that request into trusted text
(system, developer, user messages) and untrusted text (tool results) and refuses a sensitive call driven
by a value only untrusted text supplied. This hook, placed right after it, adds the agent's recent MCP
results (`results.RecentResults`) to the untrusted side, and takes them out of the trusted side when a
framework pastes tool output into a user turn: a result found verbatim is cut out of the message (the
rest stays trusted); a message that still carries the start of a result (normalised: re-spaced, re-cased)
counts as untrusted as a whole. So an IBAN an MCP result introduced cannot drive `send_money` however
the agent framework relays it. The trusted text of each request is kept too (`RecentResults.add_trusted`):
a value the user typed may then drive the agent's MCP calls.

Limits: results are kept per agent in this process only (another replica does not see them); a framework
that rewrites or summarises a result before relaying it in a user turn is not caught (the result's values
still count as untrusted, but the same values in the rewritten trusted message win).
"""

from __future__ import annotations

from interlock.agents.hook import NAME as AGENTS
from interlock.agents.hook import TRUSTED_ROLES
from interlock.agents.provenance import Corpus, normalise
from interlock.mcp.results import RecentResults
from interlock.plugins.hooks import Hook, HookContext, ModelRequest
from interlock.types import ChatRequest

PROBE_CHARS = 200
MIN_CHARS = 16


class McpProvenance(Hook[HookContext]):
    """Marks the agent's recent MCP results untrusted in its model requests (see the module docstring)."""

    name = "mcp"
    phase = "policy"

    def __init__(self, results: RecentResults) -> None:
        self._results = results

    async def before(self, ctx: HookContext, request: ModelRequest) -> ModelRequest:
        """Rebuild the agent policy's corpora with the MCP results on the untrusted side."""
        agent_id = ctx.principal.agent_id
        state = ctx.notes.get(AGENTS)
        if agent_id is None or not isinstance(request, ChatRequest) or state is None:
            return request
        if not isinstance(getattr(state, "untrusted", None), Corpus):
            return request
        results = self._results.texts(agent_id)
        probes = [p for p in (normalise(r)[:PROBE_CHARS] for r in results) if len(p) >= MIN_CHARS]
        guard = ctx.notes.get("guardrails")
        pseudonyms = getattr(getattr(guard, "pseudonyms", None), "by_placeholder", None)
        trusted: list[str] = []
        untrusted: list[str] = list(results)
        for m in request.messages:
            text = m.text()
            if isinstance(pseudonyms, dict):
                for placeholder, value in pseudonyms.items():
                    text = text.replace(placeholder, value)
            if m.role == "tool":
                untrusted.append(text)
            elif m.role in TRUSTED_ROLES:
                for r in results:  # a result pasted verbatim: the rest of the message stays trusted
                    if len(r) >= MIN_CHARS and r in text:
                        text = text.replace(r, "\n")
                norm = normalise(text)
                (untrusted if any(p in norm for p in probes) else trusted).append(text)
        self._results.add_trusted(agent_id, "\n".join(trusted))  # what the agent's MCP calls may refer to
        if not results:
            return request
        setattr(state, "trusted", Corpus.of(trusted))  # noqa: B010 - the agent hook's state, read by its `after`
        setattr(state, "untrusted", Corpus.of(untrusted))  # noqa: B010
        return request
