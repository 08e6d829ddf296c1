"""What an upstream lists besides tools: its prompts, resources and resource templates, as the gateway serves them.

Each is pinned like a tool (`pins`): a SHA-256 of what the model or the user reads of it, taken when an admin
approves the server, under a key of its own kind in the pin store (`prompt:<name>`, `resource:<uri>`,
`template:<uri template>`: MCP tool names cannot contain `:`, so the keys never meet a tool's), and scanned
for poisoning (`scan`). Only approved entries are listed to agents or read; a changed one is disabled until
re-approved, a new one is unapproved.

How agents see them:
- a prompt as `<server>__<name>`, like a tool;
- a resource, or a template, under the URI `interlock://<server>/<upstream uri>` (the upstream's URI kept
  whole after the server's name, so `interlock://docs/file:///handbook.md`), which `split_uri` takes apart;
- the tool policy names them by kind: `prompt:<server>__<name>` and `resource:<server>__<upstream uri>`, so
  `"allow": ["bank__*"]` does not open a server's prompts or resources; `"prompt:bank__*"`,
  `"resource:docs__file:///public/*"` (a glob over the whole URI) or `"resource:*"` do. An empty `allow`
  allows everything not denied, as for tools.

A resource template `file:///docs/{name}` covers the URIs it expands to (RFC 6570: `{var}` one path segment,
no `/`; `{+var}` anything; `{/var}`, `{.var}`, `{;var}`, `{?var}`, `{&var}`, `{#var}` their own parts, each
optional); a URI read through one is judged by the template's pin.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

import mcp_types as types

from interlock.mcp.pins import definition_hash
from interlock.mcp.scan import Flag, scan_tool

SEP = "__"
URI_SCHEME = "interlock://"

Kind = Literal["prompt", "resource", "template"]


@dataclass(frozen=True, slots=True)
class LivePrompt:
    """One prompt as its upstream lists it now."""

    server: str
    prompt: types.Prompt
    sha256: str
    flags: tuple[Flag, ...]

    @property
    def name(self) -> str:
        """The namespaced name agents see."""
        return f"{self.server}{SEP}{self.prompt.name}"

    @property
    def pin_key(self) -> str:
        """Its key in the pin store."""
        return f"prompt:{self.prompt.name}"

    @property
    def policy_name(self) -> str:
        """What a tool policy's patterns are matched against."""
        return f"prompt:{self.name}"

    @classmethod
    def of(cls, server: str, p: types.Prompt) -> LivePrompt:
        """Hashed and scanned: the name, the description and each argument (its name and description)."""
        arguments = [a.model_dump(mode="json", by_alias=True, exclude_none=True) for a in p.arguments or ()]
        schema = {"properties": {a.name: {"description": a.description or ""} for a in p.arguments or ()}}
        return cls(
            server,
            p,
            definition_hash(p.name, p.description, arguments),
            tuple(scan_tool(p.name, p.description, schema)),
        )


@dataclass(frozen=True, slots=True)
class LiveResource:
    """One resource, or one resource template, as its upstream lists it now."""

    server: str
    entry: types.Resource | types.ResourceTemplate
    sha256: str
    flags: tuple[Flag, ...]

    @property
    def kind(self) -> Kind:
        """`resource` or `template`."""
        return "template" if isinstance(self.entry, types.ResourceTemplate) else "resource"

    @property
    def upstream_uri(self) -> str:
        """The upstream's URI (or URI template)."""
        e = self.entry
        return e.uri_template if isinstance(e, types.ResourceTemplate) else e.uri

    @property
    def uri(self) -> str:
        """The URI (or template) agents see."""
        return gateway_uri(self.server, self.upstream_uri)

    @property
    def pin_key(self) -> str:
        """Its key in the pin store."""
        return f"{self.kind}:{self.upstream_uri}"

    @classmethod
    def of(cls, server: str, e: types.Resource | types.ResourceTemplate) -> LiveResource:
        """Hashed (URI, name, title, description, MIME type) and scanned (name, title, description)."""
        uri = e.uri_template if isinstance(e, types.ResourceTemplate) else e.uri
        meta = {"name": e.name, "title": e.title or "", "mimeType": e.mime_type or ""}
        schema = {"title": e.title or "", "properties": {}}
        return cls(
            server, e, definition_hash(uri, e.description, meta), tuple(scan_tool(e.name, e.description, schema))
        )

    def covers(self, upstream_uri: str) -> bool:
        """Whether reading `upstream_uri` goes through this entry (the same URI, or one the template expands to)."""
        if self.kind == "resource":
            return upstream_uri == self.upstream_uri
        return template_pattern(self.upstream_uri).fullmatch(upstream_uri) is not None


def resource_policy_name(server: str, upstream_uri: str) -> str:
    """What a tool policy's patterns are matched against for a read of `upstream_uri` on `server`."""
    return f"resource:{server}{SEP}{upstream_uri}"


def gateway_uri(server: str, upstream_uri: str) -> str:
    """The URI agents see for an upstream's URI."""
    return f"{URI_SCHEME}{server}/{upstream_uri}"


def split_uri(uri: str) -> tuple[str, str] | None:
    """(server, upstream URI) of a URI agents see; None when it is not one."""
    if not uri.startswith(URI_SCHEME):
        return None
    server, sep, rest = uri[len(URI_SCHEME) :].partition("/")
    return (server, rest) if sep and server and rest else None


_EXPRESSION = re.compile(r"\{([+#./;?&]?)[A-Za-z0-9_.,%*:]+\}")
_EXPANDS = {  # RFC 6570 operators: what each may expand to (an optional part may expand to nothing)
    "": "[^/?#]+",  # one path segment
    "+": ".+",  # reserved expansion: anything, slashes included
    "#": "(?:#.*)?",
    ".": "(?:\\.[^/?#]+)*",
    "/": "(?:/[^/?#]+)*",
    ";": "(?:;[^/?#]*)*",
    "?": "(?:\\?[^#]*)?",
    "&": "(?:&[^#]*)?",
}


@functools.lru_cache(maxsize=1024)
def template_pattern(template: str) -> re.Pattern[str]:
    """A regex matching what the URI template expands to (RFC 6570 expressions, by operator: `{var}` one path
    segment, `{+var}` anything, `{/var}`, `{.var}`, `{;var}`, `{?var}`, `{&var}`, `{#var}` their own parts)."""
    parts, at = [], 0
    for m in _EXPRESSION.finditer(template):
        parts.append(re.escape(template[at : m.start()]))
        parts.append(_EXPANDS[m.group(1)])
        at = m.end()
    parts.append(re.escape(template[at:]))
    return re.compile("".join(parts), re.DOTALL)
