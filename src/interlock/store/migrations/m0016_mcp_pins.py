"""0016: the MCP gateway's tool pins (rug-pull defence): the approved hash of each upstream tool's definition."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    16,
    "mcp_pins",
    (
        # sha256: of the tool's canonical name, description and input schema (`mcp.pins.definition_hash`).
        # A tool whose live definition hashes otherwise is disabled until an admin approves the server again.
        """CREATE TABLE mcp_tool_pins (
    server      TEXT NOT NULL,
    tool        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    approved_at {float} NOT NULL,
    forced      {bool} NOT NULL,
    PRIMARY KEY (server, tool)
)""",
    ),
)
