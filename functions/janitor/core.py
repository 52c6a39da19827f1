"""Deletes the queues of dead replicas, and never anything else.

In topic mode each replica creates `<prefix>-<api>-<replica>` (plus `...-dlq`), subscribes it to the
topic and refreshes a heartbeat tag on it. A replica that dies leaves its queue behind, still
subscribed, filling up. A sweep lists the queues under the prefix and removes those whose heartbeat
is older than the TTL: unsubscribe, then delete, then delete its dead-letter queue.

Safety: a queue outside the prefix is never listed; one without a topic tag (the stack's own fixed
queues, or anything the agent did not create) or whose topic tag names another topic (another stack's
replica, say one whose prefix this one's listing also matches) is kept; so is one without a heartbeat
tag or with a fresh or unreadable one; a DLQ whose main queue exists is judged with its main queue. Every step
tolerates its target being gone already, so two sweeps at once are harmless; the heartbeat is read
again just before removal, so a replica that came back in between keeps its queue.

Plain Python: the boto3 clients and the clock are passed in.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from .names import DLQ_SUFFIX, HEARTBEAT_TAG, SUBSCRIPTION_TAG, TOPIC_TAG
from .settings import JanitorSettings

logger = logging.getLogger("janitor")  # top level: Powertools copies its JSON config only to such loggers

QUEUE_GONE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
SUBSCRIPTION_GONE = frozenset({"NotFound", "NotFoundException", "InvalidParameter", "ResourceNotFound"})


class Verdict(Enum):
    STALE = "stale"
    FRESH = "fresh"
    NO_TOPIC = "no topic tag"  # not a replica's queue (e.g. the stack's fixed queues)
    NO_HEARTBEAT = "no heartbeat"
    BAD_HEARTBEAT = "unreadable heartbeat"
    OTHER_TOPIC = "another topic's queue"


def judge(tags: Mapping[str, str], *, now: float, ttl_seconds: float, topic_arn: str) -> Verdict:
    """Whether a queue with these tags belongs to a dead replica of this topic. Pure."""
    topic = tags.get(TOPIC_TAG)
    if topic is None:
        return Verdict.NO_TOPIC
    if topic != topic_arn:
        return Verdict.OTHER_TOPIC
    heartbeat = tags.get(HEARTBEAT_TAG)
    if heartbeat is None:
        return Verdict.NO_HEARTBEAT
    try:
        beat = float(heartbeat)
    except ValueError:
        return Verdict.BAD_HEARTBEAT
    if not math.isfinite(beat):  # NaN or infinite: not a time
        return Verdict.BAD_HEARTBEAT
    return Verdict.STALE if now - beat > ttl_seconds else Verdict.FRESH


@dataclass
class Sweep:
    """What one sweep saw and did."""

    checked: int = 0
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class Janitor:
    def __init__(self, sqs: Any, sns: Any, settings: JanitorSettings, clock: Callable[[], float] = time.time) -> None:
        self._sqs = sqs
        self._sns = sns
        self._settings = settings
        self._clock = clock

    def sweep(self) -> Sweep:
        result = Sweep()
        queues = self._queues()
        for name, url in sorted(queues.items()):
            if name.endswith(DLQ_SUFFIX) and name.removesuffix(DLQ_SUFFIX) in queues:
                continue  # judged together with its main queue
            result.checked += 1
            try:
                if self._remove_if_stale(name, url):
                    result.deleted.append(name)
                    dead_letters = queues.get(name + DLQ_SUFFIX)
                    if dead_letters and self._delete_queue(dead_letters):
                        result.deleted.append(name + DLQ_SUFFIX)
            except ClientError as error:  # one queue's trouble must not stop the sweep
                logger.error("janitor: cannot remove queue %s: %s", name, error, extra={"queue": name})
                result.failed.append(name)
        return result

    def _queues(self) -> dict[str, str]:
        """Name -> URL of every queue under `<prefix>-`."""
        prefix = f"{self._settings.queue_prefix}-"
        found: dict[str, str] = {}
        for page in self._sqs.get_paginator("list_queues").paginate(QueueNamePrefix=prefix):
            for url in page.get("QueueUrls", ()):
                name = url.rsplit("/", 1)[-1]
                if name.startswith(prefix):  # the API filters already; this makes it a guarantee
                    found[name] = url
        return found

    def _remove_if_stale(self, name: str, url: str) -> bool:
        tags = self._tags(url)
        if tags is None or self._verdict(name, tags) is not Verdict.STALE:
            return False
        tags = self._tags(url)  # once more, just before acting: the replica may have come back
        if tags is None or self._verdict(name, tags) is not Verdict.STALE:
            return False
        self._unsubscribe(url, tags)
        deleted = self._delete_queue(url)
        if deleted:
            logger.info(
                "janitor: deleted stale queue %s (heartbeat %s)",
                name,
                tags.get(HEARTBEAT_TAG),
                extra={"queue": name},
            )
        return deleted

    def _verdict(self, name: str, tags: Mapping[str, str]) -> Verdict:
        settings = self._settings
        verdict = judge(
            tags, now=self._clock(), ttl_seconds=settings.heartbeat_ttl_seconds, topic_arn=settings.topic_arn
        )
        if verdict is Verdict.BAD_HEARTBEAT:
            logger.warning("janitor: keeping %s, its heartbeat tag is %r", name, tags.get(HEARTBEAT_TAG))
        return verdict

    def _tags(self, url: str) -> dict[str, str] | None:
        """The queue's tags, or None when it is gone."""
        response = _unless_gone(QUEUE_GONE, self._sqs.list_queue_tags, QueueUrl=url)
        return None if response is None else dict(response.get("Tags", {}))

    def _unsubscribe(self, url: str, tags: Mapping[str, str]) -> None:
        """By the subscription tag; without one, or if it no longer resolves, by the topic's
        subscriptions whose endpoint is this queue."""
        tagged = tags.get(SUBSCRIPTION_TAG)
        if tagged and self._unsubscribe_arn(tagged):
            return
        queue_arn = self._queue_arn(url)
        if queue_arn is None:
            return
        paginator = self._sns.get_paginator("list_subscriptions_by_topic")
        for page in paginator.paginate(TopicArn=self._settings.topic_arn):
            for subscription in page.get("Subscriptions", ()):
                arn = subscription.get("SubscriptionArn", "")
                if subscription.get("Endpoint") == queue_arn and arn.startswith("arn:"):  # not PendingConfirmation
                    self._unsubscribe_arn(arn)

    def _unsubscribe_arn(self, arn: str) -> bool:
        """True when unsubscribed; False when the subscription was not found."""
        return _unless_gone(SUBSCRIPTION_GONE, self._sns.unsubscribe, SubscriptionArn=arn) is not None

    def _queue_arn(self, url: str) -> str | None:
        response = _unless_gone(QUEUE_GONE, self._sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["QueueArn"])
        return None if response is None else str(response["Attributes"]["QueueArn"])

    def _delete_queue(self, url: str) -> bool:
        """True when this call deleted it; False when it was gone already (another sweep, say)."""
        return _unless_gone(QUEUE_GONE, self._sqs.delete_queue, QueueUrl=url) is not None


def _unless_gone(gone: frozenset[str], operation: Callable[..., Any], **parameters: Any) -> Any:
    """The operation's response, or None when its target no longer exists: the error codes in `gone`
    mean another sweep (or the replica itself) got there first, which is not a failure."""
    try:
        return operation(**parameters)
    except ClientError as error:
        if _code(error) in gone:
            return None
        raise


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
