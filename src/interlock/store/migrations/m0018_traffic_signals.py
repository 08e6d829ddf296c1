"""0018: traffic signals per key and hour, for shadow-agent discovery (counts only: never prompt text)."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    18,
    "traffic_signals",
    (
        # Each replica adds its counts (upsert): requests, those offering tools, those feeding tool results
        # back, those continuing a conversation seen before (several turns, a known prefix), answers with tool
        # calls; `framework`: the agent framework its User-Agent named last ("" when none).
        """CREATE TABLE traffic_signals (
    key_id            TEXT NOT NULL,
    hour              {bigint} NOT NULL,
    requests          {bigint} NOT NULL,
    with_tools        {bigint} NOT NULL,
    with_tool_results {bigint} NOT NULL,
    continued         {bigint} NOT NULL,
    tool_call_answers {bigint} NOT NULL,
    framework         TEXT NOT NULL,
    PRIMARY KEY (key_id, hour)
)""",
    ),
)
