"""Names shared by the agent (which creates per-replica queues in topic mode) and the janitor
(which deletes the queues of dead replicas). The janitor keeps its own copy of these strings,
so its Lambda bundle does not carry the agent; a test checks that both agree.
"""

from __future__ import annotations

import re

HEARTBEAT_TAG = "reloader:heartbeat"  # seconds since the epoch, as a decimal string, refreshed by the agent
TOPIC_TAG = "reloader:topic"  # the topic ARN the queue is subscribed to
SUBSCRIPTION_TAG = "reloader:subscription"  # the subscription ARN, so the janitor can unsubscribe
API_TAG = "reloader:api"
REPLICA_TAG = "reloader:replica"
DLQ_SUFFIX = "-dlq"
MAX_QUEUE_NAME = 80


def queue_name(prefix: str, api: str, replica: str) -> str:
    """`<prefix>-<api>-<replica>`, in SQS's alphabet, short enough to leave room for `-dlq`."""
    raw = f"{prefix}-{api}-{replica}"
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", raw)
    return cleaned[: MAX_QUEUE_NAME - len(DLQ_SUFFIX)]
