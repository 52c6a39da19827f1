"""Names shared by the agent (which creates per-replica queues in topic mode) and the janitor
(which deletes the queues of dead replicas). The janitor keeps its own copy of these strings,
so its Lambda bundle does not carry the agent; a test checks that both agree.
"""

from __future__ import annotations

import hashlib
import re

HEARTBEAT_TAG = "reloader:heartbeat"  # seconds since the epoch, as a decimal string, refreshed by the agent
TOPIC_TAG = "reloader:topic"  # the topic ARN the queue is subscribed to
SUBSCRIPTION_TAG = "reloader:subscription"  # the subscription ARN, so the janitor can unsubscribe
API_TAG = "reloader:api"
REPLICA_TAG = "reloader:replica"  # the replica id: a replica never adopts a queue tagged with another one
DLQ_SUFFIX = "-dlq"
MAX_QUEUE_NAME = 80  # SQS's limit
HASH_LENGTH = 10  # hex digits of the full name's SHA-256 that keep shortened names apart
MAX_PREFIX = MAX_QUEUE_NAME - len(DLQ_SUFFIX) - HASH_LENGTH - 2  # room for "-" + hash and one "-" after it


def queue_name(prefix: str, api: str, replica: str) -> str:
    """`<prefix>-<api>-<replica>`, in SQS's alphabet, short enough to leave room for `-dlq`.

    A name that would be too long keeps its head and ends in a hash of the whole name instead,
    so two replicas whose ids differ only at the end (pod suffixes) still get two queues, and the
    name still starts with `<prefix>-` (what the janitor and the IAM policy match).
    """
    raw = f"{prefix}-{api}-{replica}"
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", raw)
    limit = MAX_QUEUE_NAME - len(DLQ_SUFFIX)
    if len(cleaned) <= limit:
        return cleaned
    if len(prefix) > MAX_PREFIX:
        raise ValueError(f"queue prefix {prefix!r} is {len(prefix)} characters long; at most {MAX_PREFIX} fit")
    digest = hashlib.sha256(raw.encode()).hexdigest()[:HASH_LENGTH]
    return f"{cleaned[: limit - HASH_LENGTH - 1]}-{digest}"
