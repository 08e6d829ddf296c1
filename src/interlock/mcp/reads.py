"""Prompts and resources through the MCP gateway: `prompts/get` and `resources/read`, governed.

What an agent may read (`listings` has the naming): an approved prompt or resource (a listed resource, or a
URI one of the server's approved templates covers) that its tool policy permits under the kind's name
(`prompt:<server>__<name>`, `resource:<server>__<upstream uri>`). A refusal is a JSON-RPC error the SDK
raises as `MCPError`, whose message starts with the code and whose `data` is an error object
(`code`, `message`, `type`):
- `prompt_unknown` (-32602, the spec's code for an unknown prompt), `resource_unknown` (-32002, the spec's
  "resource not found"): nothing listed by that name or URI;
- `prompt_unapproved`, `prompt_changed`, `resource_unapproved`, `resource_changed` (-32003): not pinned, or
  changed since an admin approved the server;
- `prompt_not_allowed`, `resource_not_allowed` (-32003): the agent's policy does not permit it (a URI with
  a `..` segment, which could step outside a prefix the policy allows, is never permitted);
- `guardrail_blocked` (-32003): the text carries an entity the guardrail policy blocks;
- `mcp_upstream_unavailable`, `mcp_upstream_error` (-32603): the upstream did not answer, or failed.

What comes back goes through the input guardrails like a tool result (`screening`: a secret redacted, a
blocked entity refuses the read) and is kept as the agent's **untrusted** content for provenance: a
prompt's messages and a resource's text come from a third party, so a sensitive tool call whose value
only they supplied is refused or held, as for a tool result. Binary contents (`blob`) pass unscanned and
are not kept. Resource contents come back under the gateway's URIs. A read is audited as `agent.mcp_read`
(kind, name, verdict; never the text) and leaves one ledger row (`mcp.ledger`), like a tool call; it is
not a step of the run (reading changes nothing), so run caps and the loop breaker do not count it.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine
from typing import TypeVar

import mcp_types as types
from mcp.shared.exceptions import MCPError

from interlock.agents.policy import ToolPolicy
from interlock.audit.chain import AuditEvent
from interlock.auth.keys import Principal
from interlock.errors import GatewayError
from interlock.guardrails.service import GuardrailService
from interlock.mcp.catalog import McpCatalog
from interlock.mcp.ledger import Settled
from interlock.mcp.listings import gateway_uri, resource_policy_name
from interlock.mcp.results import RecentResults
from interlock.mcp.screening import screen_texts
from interlock.mcp.upstream import Upstream, UpstreamDown
from interlock.settings import McpSettings
from interlock.store.mcp_queries import McpStore
from interlock.store.records import UsageRecord

T = TypeVar("T")

REFUSED = -32003  # a JSON-RPC server error code: the gateway refused the read (pin, policy, guardrails)
UNKNOWN_RESOURCE = -32002  # the spec's "resource not found"

_WHY = {
    "changed": "its definition changed since an admin approved the server; it is disabled until re-approved",
    "unapproved": "an admin has not approved it yet (`interlock mcp approve SERVER`)",
}


def shown(text: str, limit: int = 200) -> str:
    """A name or URI as a message quotes it: at most `limit` characters (a client may send megabytes)."""
    return text if len(text) <= limit else text[:limit] + "…"


def refusal(settled: Settled, status: int, rpc_code: int, code: str, reason: str) -> MCPError:
    """The error to raise for a refused or failed read, noted on its ledger row."""
    settled.status, settled.error = status, f"{code}: {reason}"[:500]
    kind = "permission_error" if status == 403 else "invalid_request_error" if status < 500 else "upstream_error"
    return MCPError(code=rpc_code, message=f"{code}: {reason}", data={"code": code, "message": reason, "type": kind})


class McpReads(McpCatalog):
    """The catalog plus the read paths (see the module docstring), and what every governed path shares."""

    def __init__(
        self,
        settings: McpSettings,
        store: McpStore,
        audit: Callable[[AuditEvent], None] | None = None,
        guardrails: GuardrailService | None = None,
    ) -> None:
        super().__init__(settings, store, audit)
        self._guardrails = guardrails
        self.results = RecentResults(settings.untrusted_results, settings.untrusted_ttl_s)
        self.ledger: Callable[[UsageRecord], None] | None = None  # one row per call or read (`mcp.ledger`)
        self.ledger_state: Callable[[], str] = lambda: "ok"  # the store's: "full" refuses new work

    async def settle(self, principal: Principal, name: str, settled: Settled, work: Awaitable[T]) -> T:
        """Run `work` (a call or a read named `name`); whatever it ends in, write its one ledger row.

        While the ledger can record nothing (the database refuses writes and the local spool is full), new
        work is refused (`ledger_unavailable`) before anything is done, as a model request is."""
        if self.ledger is not None and self.ledger_state() == "full":
            if isinstance(work, Coroutine):
                work.close()  # never started
            raise MCPError(
                code=types.INTERNAL_ERROR,
                message="ledger_unavailable: the ledger cannot record calls right now (the database refuses writes "
                "and the local spool is full); retry shortly",
                data={"code": "ledger_unavailable", "message": "the ledger cannot record calls right now",
                      "type": "server_error"},
            )  # fmt: skip
        try:
            return await work
        except GatewayError as exc:
            settled.status, settled.error = exc.status, f"{exc.code}: {exc.message}"
            raise
        except MCPError:  # a refusal noted its own status (`refusal`)
            if settled.status == 200:
                settled.status, settled.error = 502, "mcp_upstream_error"
            raise
        except asyncio.CancelledError:  # the client went away (or the server stops): as a model request's 499
            settled.status, settled.error = 499, "client disconnected"
            raise
        except BaseException as exc:  # a bug: still one row, then the error goes on
            settled.status, settled.error = 500, f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if self.ledger is not None:
                self.ledger(settled.row(principal, name))

    async def get_prompt(
        self, principal: Principal, policy: ToolPolicy | None, name: str, arguments: dict[str, str] | None, run_id: str
    ) -> types.GetPromptResult:
        """One prompt, governed and screened (see the module docstring)."""
        settled = Settled(run_id=run_id)
        return await self.settle(
            principal, name, settled, self._get_prompt(principal, policy, name, arguments, settled)
        )

    async def _get_prompt(
        self,
        principal: Principal,
        policy: ToolPolicy | None,
        name: str,
        arguments: dict[str, str] | None,
        settled: Settled,
    ) -> types.GetPromptResult:
        live = self.find_prompt(name)
        if live is None:
            self._audit_read(principal, "prompt", name, "prompt_unknown")
            raise refusal(settled, 404, types.INVALID_PARAMS, "prompt_unknown", f"no prompt named '{shown(name)}'")
        settled.server, settled.upstream_tool = live.server, live.prompt.name
        state = self.status_of(live)
        if state != "approved":
            self._audit_read(principal, "prompt", name, f"prompt_{state}")
            raise refusal(
                settled, 403, REFUSED, f"prompt_{state}", f"prompt '{shown(name)}' is not available: {_WHY[state]}"
            )
        if policy is not None and not policy.permits(live.policy_name):
            self._audit_read(principal, "prompt", name, "prompt_not_allowed")
            why = f"this agent's policy does not allow '{live.policy_name}'"
            raise refusal(settled, 403, REFUSED, "prompt_not_allowed", why)
        result: types.GetPromptResult = await self._upstream(
            settled, live.server, lambda u: u.get_prompt(live.prompt.name, dict(arguments or {}))
        )
        texts = [_text_of(m.content) for m in result.messages]
        cleaned = self._screen(principal, "prompt", name, settled, [t for t in texts if t is not None])
        it = iter(cleaned)
        messages = [
            m if t is None else m.model_copy(update={"content": _with_text(m.content, next(it))})
            for m, t in zip(result.messages, texts, strict=True)
        ]
        self._audit_read(principal, "prompt", name, "allowed")
        self._keep(principal, cleaned)
        return result.model_copy(update={"messages": messages})

    async def read_resource(
        self, principal: Principal, policy: ToolPolicy | None, uri: str, run_id: str
    ) -> types.ReadResourceResult:
        """One resource, governed and screened (see the module docstring)."""
        settled = Settled(run_id=run_id)
        return await self.settle(principal, uri, settled, self._read_resource(principal, policy, uri, settled))

    async def _read_resource(
        self, principal: Principal, policy: ToolPolicy | None, uri: str, settled: Settled
    ) -> types.ReadResourceResult:
        found = self.find_resource(uri)
        entry = found[2] if found is not None else None
        if found is None or entry is None:
            self._audit_read(principal, "resource", uri, "resource_unknown")
            why = (
                f"no resource '{shown(uri)}' (the gateway's URIs are interlock://<server>/<uri>, as "
                "resources/list shows)"
                if found is None
                else f"no listed resource or resource template of '{found[0]}' covers '{shown(uri)}'"
            )
            raise refusal(settled, 404, UNKNOWN_RESOURCE, "resource_unknown", why)
        server, upstream_uri = found[0], found[1]
        settled.server, settled.upstream_tool = server, upstream_uri
        state = self.status_of(entry)
        if state != "approved":
            self._audit_read(principal, "resource", uri, f"resource_{state}")
            why = f"resource '{shown(uri)}' is not available: {_WHY[state]}"
            raise refusal(settled, 403, REFUSED, f"resource_{state}", why)
        if ".." in urllib.parse.unquote(upstream_uri).replace("\\", "/").split("/"):
            self._audit_read(principal, "resource", uri, "resource_not_allowed")
            why = "a URI with a '..' segment is refused: it could step outside the prefix a policy allows"
            raise refusal(settled, 403, REFUSED, "resource_not_allowed", why)
        wanted = resource_policy_name(server, upstream_uri)
        if policy is not None and not policy.permits(wanted):
            self._audit_read(principal, "resource", uri, "resource_not_allowed")
            raise refusal(
                settled, 403, REFUSED, "resource_not_allowed", f"this agent's policy does not allow '{shown(wanted)}'"
            )
        result: types.ReadResourceResult = await self._upstream(
            settled, server, lambda u: u.read_resource(upstream_uri)
        )
        texts = [c.text for c in result.contents if isinstance(c, types.TextResourceContents)]
        it = iter(self._screen(principal, "resource", uri, settled, texts))
        contents = [
            c.model_copy(
                update={"uri": gateway_uri(server, c.uri)}
                | ({"text": next(it)} if isinstance(c, types.TextResourceContents) else {})
            )
            for c in result.contents
        ]
        self._audit_read(principal, "resource", uri, "allowed")
        self._keep(principal, [c.text for c in contents if isinstance(c, types.TextResourceContents)])
        return result.model_copy(update={"contents": contents})

    # shared ------------------------------------------------------------------------------------

    async def _upstream(self, settled: Settled, server: str, ask: Callable[[Upstream], Awaitable[T]]) -> T:
        settled.sent = True
        try:
            return await ask(self.upstreams[server])
        except (UpstreamDown, TimeoutError) as exc:
            status = 504 if isinstance(exc, TimeoutError) else 502
            why = f"MCP server '{server}' did not answer ({type(exc).__name__}); retry later"
            raise refusal(settled, status, types.INTERNAL_ERROR, "mcp_upstream_unavailable", why) from None
        except Exception as exc:  # an MCP error from the upstream: its message is the upstream's, not ours
            why = f"MCP server '{server}' failed: {str(exc)[:300]}"
            raise refusal(settled, 502, types.INTERNAL_ERROR, "mcp_upstream_error", why) from None

    def _screen(self, principal: Principal, kind: str, name: str, settled: Settled, texts: list[str]) -> list[str]:
        if self._guardrails is None or not texts:
            return texts
        cleaned, blocking = screen_texts(self._guardrails, principal, name, texts, self._record)
        if blocking:
            self._audit_read(principal, kind, name, "guardrail_blocked")
            why = f"'{shown(name)}' contains {', '.join(blocking)}, which the guardrail policy blocks"
            raise refusal(settled, 403, REFUSED, "guardrail_blocked", why)
        return cleaned

    def _keep(self, principal: Principal, texts: list[str]) -> None:
        """Keep what the agent read as its untrusted content (provenance)."""
        if principal.agent_id:
            for text in texts:
                self.results.add(principal.agent_id, text)

    def _audit_read(self, p: Principal, kind: str, name: str, verdict: str) -> None:
        self._record(
            AuditEvent(
                "agent.mcp_read",
                "allow" if verdict == "allowed" else "deny",
                p.key_id,
                p.name,
                name[:200],
                "" if verdict == "allowed" else verdict,
                {
                    "via": "mcp",
                    "kind": kind,
                    "agent_id": p.agent_id or "",
                    "owner_id": p.owner_id or "",
                    "name": name[:200],
                    "verdict": verdict,
                },
            )
        )


def _text_of(block: types.ContentBlock) -> str | None:
    """The text a prompt message carries (a text block, or an embedded text resource); None for others."""
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.EmbeddedResource) and isinstance(block.resource, types.TextResourceContents):
        return block.resource.text
    return None


def _with_text(block: types.ContentBlock, text: str) -> types.ContentBlock:
    if isinstance(block, types.EmbeddedResource) and isinstance(block.resource, types.TextResourceContents):
        return block.model_copy(update={"resource": block.resource.model_copy(update={"text": text})})
    return block.model_copy(update={"text": text})
