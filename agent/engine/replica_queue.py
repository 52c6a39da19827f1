"""Topic mode: each replica owns a queue subscribed to the model-events topic.

A standard SQS queue gives each message to one consumer, so fan-out to every replica needs a
queue per replica. At start the agent creates `<prefix>-<api>-<replica>` (and its `-dlq`),
lets only the topic send to it, subscribes it with raw delivery and tags it with a heartbeat
it refreshes. On a clean shutdown it unsubscribes and deletes both; the janitor function
deletes the queues of replicas that died (their heartbeat went stale). Tag names: agent.domain.fleet.
"""

from __future__ import annotations

import json
import logging

from agent.boundaries.sns import Topic
from agent.boundaries.sqs import QueueAdmin, subscription_policy
from agent.domain import fleet
from agent.domain.errors import ReloaderError
from agent.engine.scheduler import Handle, Scheduler
from agent.engine.state_log import StateLog
from agent.logs import with_fields

log = logging.getLogger(__name__)

MAX_RECEIVE_COUNT = 5  # deliveries before the redrive policy moves a message to the dead-letter queue


class ReplicaQueue:
    def __init__(
        self,
        admin: QueueAdmin,
        topic: Topic,
        prefix: str,
        api: str,
        replica: str,
        visibility_timeout: int,
        heartbeat_interval: float,
        scheduler: Scheduler,
    ) -> None:
        self._admin = admin
        self._topic = topic
        self.name = fleet.queue_name(prefix, api, replica)
        self._api = api
        self._replica = replica
        self._visibility = visibility_timeout
        self._scheduler = scheduler
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat: Handle | None = None
        self.url = ""
        self.dead_letter_url = ""
        self.subscription_arn = ""
        self._heartbeat_state = StateLog(log, "%s", "heartbeat refreshed again", {"queue": self.name})

    def create(self) -> str:
        """Create the queue and its dead-letter queue, subscribe it; return its URL."""
        tags = self._tags()
        self.dead_letter_url, dead_letter_arn = self._admin.create(
            self.name + fleet.DLQ_SUFFIX, {"MessageRetentionPeriod": str(14 * 24 * 3600)}, tags, fleet.REPLICA_TAG
        )
        attributes = {
            "VisibilityTimeout": str(self._visibility),
            "ReceiveMessageWaitTimeSeconds": "20",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
        }
        self.url, queue_arn = self._admin.create(self.name, attributes, tags, fleet.REPLICA_TAG)
        self._admin.set_attributes(self.url, {"Policy": subscription_policy(queue_arn, self._topic.arn)})
        self.subscription_arn = self._topic.subscribe_queue(queue_arn)
        self._admin.tag(self.url, {fleet.SUBSCRIPTION_TAG: self.subscription_arn})
        with_fields(log, queue=self.url).info("created queue %s, subscribed to %s", self.name, self._topic.arn)
        return self.url

    def start_heartbeat(self) -> None:
        self._heartbeat = self._scheduler.every(lambda: self._heartbeat_interval, self._beat)

    def delete(self) -> None:
        """Unsubscribe and delete both queues (clean shutdown)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        try:
            if self.subscription_arn:
                self._topic.unsubscribe(self.subscription_arn)
            for url in (self.url, self.dead_letter_url):
                if url:
                    self._admin.delete(url)
            with_fields(log, queue=self.url).info("deleted queue %s and its subscription", self.name)
        except ReloaderError as error:
            log.warning("could not delete queue %s (the janitor will): %s", self.name, error)

    def _tags(self) -> dict[str, str]:
        return {
            fleet.HEARTBEAT_TAG: str(int(self._scheduler.now())),
            fleet.TOPIC_TAG: self._topic.arn,
            fleet.API_TAG: self._api,
            fleet.REPLICA_TAG: self._replica,
        }

    def _beat(self) -> None:
        try:
            for url in (self.url, self.dead_letter_url):
                self._admin.tag(url, {fleet.HEARTBEAT_TAG: str(int(self._scheduler.now()))})
        except ReloaderError as error:
            self._heartbeat_state(f"cannot refresh the heartbeat tag: {error}")
        else:
            self._heartbeat_state(None)
