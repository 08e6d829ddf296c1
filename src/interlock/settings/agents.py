"""Agents' sections: the oversight webhook and approvals, and the MCP gateway's upstream servers."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from interlock.settings.base import _Strict


class OversightSettings(_Strict):
    """`[oversight]`: human oversight of agents. Approval requests expire after `approval_ttl_s`; with
    `webhook_url` set, each new approval request and each halt is announced as a signed webhook."""

    approval_ttl_s: float = Field(default=3600.0, gt=0, le=30 * 86400)
    max_token_ttl_s: float = Field(default=86400.0, gt=0)  # the longest an agent token may live
    webhook_url: str = ""
    webhook_secret: SecretStr | None = None  # HMAC-SHA256 key (also INTERLOCK_OVERSIGHT__WEBHOOK_SECRET)
    webhook_attempts: int = Field(default=5, ge=1, le=20)

    @model_validator(mode="after")
    def _check(self) -> OversightSettings:
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError("oversight.webhook_url must be an http:// or https:// URL")
        if self.webhook_url and (self.webhook_secret is None or not self.webhook_secret.get_secret_value()):
            raise ValueError("oversight.webhook_secret is required with oversight.webhook_url (webhooks are signed)")
        return self


class McpServerSettings(_Strict):
    """One `[[mcp.servers]]` upstream: a stdio `command` (with `args`, `env`) or an HTTP `url` (with `headers`).

    `env` and `headers` hold the upstream's credentials: Interlock sends them, agents never see them."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")  # tools are exposed as <name>__<tool>
    command: str = ""
    args: list[str] = Field(default_factory=list)
    env: dict[str, SecretStr] = Field(default_factory=dict, repr=False)
    cwd: str = ""
    url: str = ""
    headers: dict[str, SecretStr] = Field(default_factory=dict, repr=False)
    timeout_s: float = Field(default=30.0, gt=0, le=3600)  # one tool call

    @model_validator(mode="after")
    def _check(self) -> McpServerSettings:
        if "__" in self.name:
            raise ValueError(f"mcp.servers '{self.name}': a name may not contain '__' (the namespace separator)")
        if bool(self.command) == bool(self.url):
            raise ValueError(f"mcp.servers '{self.name}': set exactly one of `command` (stdio) or `url` (HTTP)")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"mcp.servers '{self.name}': url must be an http:// or https:// URL")
        return self


class McpSettings(_Strict):
    """`[mcp]`: the MCP gateway at `/mcp` and the upstream servers it fronts (see the README's MCP gateway)."""

    servers: list[McpServerSettings] = Field(default_factory=list)
    refresh_s: float = Field(default=2.0, gt=0)  # pins re-read from the store this often (other processes' approvals)
    relist_s: float = Field(default=60.0, gt=0)  # upstreams re-listed (and down ones reconnected) this often
    untrusted_results: int = Field(default=32, ge=0, le=1024)  # recent tool results kept per agent for provenance
    untrusted_ttl_s: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _unique(self) -> McpSettings:
        names = [s.name for s in self.servers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"mcp.servers: duplicate names {dup}")
        return self
