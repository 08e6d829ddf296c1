"""The MCP gateway: upstream MCP servers (stdio / HTTP) behind `/mcp`, tool pinning, and the poisoning scan.

Knows nothing of model providers. `gateway.McpGateway` holds the upstream connections, the pins and the
per-agent record of tool results (provenance); `server` serves it over streamable HTTP with the `mcp` SDK.
"""
