"""The agent's names for its per-replica queues, copied from agent.domain.fleet so that the Lambda
bundle does not carry the agent; tests/functions/test_names.py checks that both copies agree.
"""

from __future__ import annotations

HEARTBEAT_TAG = "reloader:heartbeat"  # seconds since the epoch, as a decimal string, refreshed by the agent
TOPIC_TAG = "reloader:topic"  # the topic ARN the queue is subscribed to
SUBSCRIPTION_TAG = "reloader:subscription"  # the subscription ARN, so the janitor can unsubscribe
API_TAG = "reloader:api"
REPLICA_TAG = "reloader:replica"
DLQ_SUFFIX = "-dlq"
