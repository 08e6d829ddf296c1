"""The MCP gateway: upstream MCP servers (stdio / HTTP) behind `/mcp`, tool pinning, and the poisoning scan.

Knows nothing of model providers. `catalog.McpCatalog` holds the upstream connections and the pins;
`gateway.McpGateway` adds the governed call path and the per-agent record of tool results (provenance);
`server` serves it over streamable HTTP with the `mcp` SDK and `notifications` tells its sessions of changes.
"""
