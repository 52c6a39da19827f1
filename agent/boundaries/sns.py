"""SNS: subscribe an agent-owned queue to the model-events topic, and unsubscribe it."""

from __future__ import annotations

from typing import Any

from agent.boundaries.aws import translated
from agent.domain.errors import PermanentError


class Topic:
    def __init__(self, client: Any, arn: str) -> None:
        self._client = client
        self.arn = arn

    def subscribe_queue(self, queue_arn: str) -> str:
        """Subscribe with raw message delivery (the S3 event is the body); return the subscription ARN."""
        with translated(f"subscribing {queue_arn} to {self.arn}"):
            response = self._client.subscribe(
                TopicArn=self.arn,
                Protocol="sqs",
                Endpoint=queue_arn,
                Attributes={"RawMessageDelivery": "true"},
                ReturnSubscriptionArn=True,
            )
        return str(response["SubscriptionArn"])

    def unsubscribe(self, subscription_arn: str) -> None:
        try:
            with translated(f"unsubscribing {subscription_arn}"):
                self._client.unsubscribe(SubscriptionArn=subscription_arn)
        except PermanentError as error:
            if "NotFound" not in str(error):
                raise
