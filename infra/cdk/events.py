"""The SNS topic that every change under the models prefix goes through, and who may publish to it.

Two routes lead from the bucket to the topic: S3 event notifications (default), or EventBridge for a
bucket whose single notification configuration is already taken. Either way the topic's policy admits
exactly one publisher: this bucket from this account, or this stack's EventBridge rule.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from infra.cdk import nag
from infra.cdk.config import EventRoute, StackConfig
from infra.cdk.constants import EVENTBRIDGE_DETAIL_TYPES
from infra.cdk.queues import alarm_on_dead_letters

# How long EventBridge keeps trying to hand an event to the topic before it goes to the DLQ.
FORWARD_RETRY_ATTEMPTS = 20
FORWARD_MAX_EVENT_AGE_SECONDS = 3600


class ModelEvents(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: StackConfig, bucket_name: str, bucket_arn: str
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self, "Topic", display_name="model-reloader: S3 model events", enforce_ssl=True
        )
        nag.acknowledge(
            self.topic,
            "SNS2",
            "Messages carry only bucket, key and event name, never model data; SSE-KMS would need a "
            "customer-managed key whose policy admits S3 and EventBridge as publishers.",
        )
        self.rule: events.Rule | None = None
        if config.event_route is EventRoute.EVENTBRIDGE:
            self.rule = self._forward_eventbridge(config, bucket_name)
            publisher = iam.ServicePrincipal("events.amazonaws.com")
            conditions = {"ArnEquals": {"aws:SourceArn": self.rule.rule_arn}}
        else:
            publisher = iam.ServicePrincipal("s3.amazonaws.com")
            conditions = {
                "ArnEquals": {"aws:SourceArn": bucket_arn},
                "StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID},
            }
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="PublishModelEvents",
                principals=[publisher],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=conditions,
            )
        )

    @property
    def policy(self) -> IConstruct:
        """The topic's policy resource: a bucket that notifies the topic must be created after it."""
        return self.topic.node.find_child("Policy")

    def _forward_eventbridge(self, config: StackConfig, bucket_name: str) -> events.Rule:
        key_filter = [{"prefix": config.models_prefix}] if config.models_prefix else None
        rule = events.Rule(
            self,
            "S3ToTopic",
            description="Forwards the models bucket's object events to the topic",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=list(EVENTBRIDGE_DETAIL_TYPES),
                detail={
                    "bucket": {"name": [bucket_name]},
                    **({"object": {"key": key_filter}} if key_filter else {}),
                },
            ),
        )
        # The L1 target, not events_targets.SnsTopic: that one grants every EventBridge rule the right to
        # publish, where the policy above admits this rule only.
        cfn_rule = rule.node.default_child
        assert isinstance(cfn_rule, events.CfnRule)
        # An event SNS refuses (throttled, say) is retried for a while, then kept in a DLQ with an alarm
        # rather than dropped: a replica would otherwise miss that version.
        self.forward_dead_letters = sqs.Queue(
            self,
            "ForwardDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        self.forward_dead_letters.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeDeadLetters",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[self.forward_dead_letters.queue_arn],
                conditions={"ArnEquals": {"aws:SourceArn": rule.rule_arn}},
            )
        )
        nag.acknowledge(
            self.forward_dead_letters,
            "SQS3",
            "This queue is itself the dead-letter queue of the EventBridge rule's target (an alarm watches it).",
        )
        alarm_on_dead_letters(self, "ForwardDeadLettersAlarm", self.forward_dead_letters, "the S3-to-topic rule's DLQ")
        cfn_rule.targets = [
            events.CfnRule.TargetProperty(
                id="Topic",
                arn=self.topic.topic_arn,
                dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=self.forward_dead_letters.queue_arn),
                retry_policy=events.CfnRule.RetryPolicyProperty(
                    maximum_retry_attempts=FORWARD_RETRY_ATTEMPTS,
                    maximum_event_age_in_seconds=FORWARD_MAX_EVENT_AGE_SECONDS,
                ),
            )
        ]
        return rule
