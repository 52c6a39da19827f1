"""Queues the stack owns, for replicas with a fixed identity (queue mode): one per replica, each with
a dead-letter queue, subscribed to the topic. Replicas in topic mode create their own queues instead.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.janitor.names import DLQ_SUFFIX
from infra.cdk.config import StackConfig


def alarm_on_dead_letters(scope: Construct, construct_id: str, queue: sqs.IQueue, what: str) -> cloudwatch.Alarm:
    """An alarm as soon as a dead-letter queue holds a message: each one is an event nobody handled."""
    return cloudwatch.Alarm(
        scope,
        construct_id,
        alarm_description=f"model-reloader: {what} has messages; each is a model event that was not handled",
        metric=queue.metric_approximate_number_of_messages_visible(
            period=cdk.Duration.minutes(5), statistic="Maximum"
        ),
        threshold=0,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


class FixedQueues(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: StackConfig, topic: sns.ITopic
    ) -> None:
        super().__init__(scope, construct_id)
        self.queues: list[sqs.Queue] = []
        self.alarms: list[cloudwatch.Alarm] = []
        self.dead_letter_queues: list[sqs.Queue] = []
        for number in range(1, config.fixed_queues + 1):
            name = config.fixed_queue_name(number)
            dead_letters = sqs.Queue(
                self,
                f"DeadLetters{number}",
                queue_name=name + DLQ_SUFFIX,
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
                retention_period=cdk.Duration.days(14),
            )
            queue = sqs.Queue(
                self,
                f"Queue{number}",
                queue_name=name,
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
                visibility_timeout=cdk.Duration.seconds(config.visibility_timeout),
                dead_letter_queue=sqs.DeadLetterQueue(
                    queue=dead_letters, max_receive_count=config.max_receive_count
                ),
            )
            topic.add_subscription(subscriptions.SqsSubscription(queue))
            self.alarms.append(
                alarm_on_dead_letters(self, f"DeadLettersAlarm{number}", dead_letters, f"the DLQ of {name}")
            )
            self.queues.append(queue)
            self.dead_letter_queues.append(dead_letters)

    @property
    def arns(self) -> list[str]:
        """Every queue the stack owns, DLQs included: replicas and the janitor may not administer them."""
        return [queue.queue_arn for queue in self.queues + self.dead_letter_queues]
