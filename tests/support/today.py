"""Shapes the API takes and sends today (openai SDK 3.57.0), shared by the tests that send them.

Newer than the spec of 2026-08-21: a ``configuration_update`` input item, the beta compact
route's item types, a ``compaction_trigger`` with an ``id``.
"""

from __future__ import annotations

from typing import Any

THRESHOLD = [{"type": "compaction", "compact_threshold": 1000}]
STORY = "the fox walked through the quiet forest and looked at every tree. " * 90
TRIGGER_ID = "ct_0001"
USER = {"role": "user", "content": "summarize the plan"}
CONFIGURATION_UPDATE = {
    "type": "configuration_update",
    "id": "cfg_0001",
    "reasoning": {"effort": "low"},
    "text": {"format": {"type": "text"}},
}
MULTI_AGENT_ITEMS: list[dict[str, Any]] = [
    {
        "type": "multi_agent_call",
        "action": "spawn_agent",
        "arguments": '{"task": "count the trees"}',
        "call_id": "call_0001",
    },
    {
        "type": "multi_agent_call_output",
        "action": "spawn_agent",
        "call_id": "call_0001",
        "output": [{"type": "output_text", "text": "spawned counter"}],
    },
    {
        "type": "agent_message",
        "author": "counter",
        "recipient": "root",
        "content": [{"type": "input_text", "text": "90 trees"}],
    },
]
BETA = ["responses_multi_agent=v1"]
