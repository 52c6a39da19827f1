"""The janitor's world in LocalStack: replica queues made the way the agent makes them in topic mode
(names and tags from agent.domain.fleet), and the janitor's clock in these tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.domain import fleet

NOW = 1_800_000_000.0  # the janitor's clock in these tests
TTL = 3600


@dataclass
class Fleet:
    """Queues in LocalStack, as replicas and the stack leave them."""

    sqs: Any
    sns: Any
    prefix: str
    topic_arn: str

    def replica_queue(self, api: str, replica: str, heartbeat: float | None, tag_subscription: bool = True) -> str:
        """A replica's queue and DLQ, subscribed to the topic and tagged as the agent does it."""
        name = fleet.queue_name(self.prefix, api, replica)
        dead_letters = self.sqs.create_queue(QueueName=name + fleet.DLQ_SUFFIX)["QueueUrl"]
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        subscription = self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=arn)["SubscriptionArn"]
        tags = {fleet.TOPIC_TAG: self.topic_arn, fleet.API_TAG: api, fleet.REPLICA_TAG: replica}
        if heartbeat is not None:
            tags[fleet.HEARTBEAT_TAG] = str(int(heartbeat))
        if tag_subscription:
            tags[fleet.SUBSCRIPTION_TAG] = subscription
        self.sqs.tag_queue(QueueUrl=url, Tags=tags)
        self.sqs.tag_queue(QueueUrl=dead_letters, Tags={k: v for k, v in tags.items() if k != fleet.SUBSCRIPTION_TAG})
        return name

    def plain_queue(self, name: str, tags: dict[str, str] | None = None) -> str:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        if tags:
            self.sqs.tag_queue(QueueUrl=url, Tags=tags)
        return name

    def exists(self, name: str) -> bool:
        return name in self.names(name)

    def names(self, prefix: str | None = None) -> set[str]:
        urls = self.sqs.list_queues(QueueNamePrefix=prefix or self.prefix).get("QueueUrls", [])
        return {url.rsplit("/", 1)[-1] for url in urls}

    def subscribed_endpoints(self) -> set[str]:
        subscriptions = self.sns.list_subscriptions_by_topic(TopicArn=self.topic_arn)["Subscriptions"]
        return {subscription["Endpoint"].rsplit(":", 1)[-1] for subscription in subscriptions}


def stale() -> float:
    return NOW - TTL - 60


def fresh() -> float:
    return NOW - 60
