"""The models bucket: created locked down (encrypted, private, TLS only), or an existing one by name.

A created bucket carries its notification configuration natively (no Lambda-backed custom resource).
S3 checks, when the configuration is applied, that the topic's policy lets it publish, so the bucket
must come after the topic policy; the policy names the bucket by an ARN built from its known name
rather than by reference, which is what keeps that ordering free of a cycle.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.interfaces.aws_s3 import IBucketRef
from constructs import Construct, IConstruct

from infra.cdk import nag
from infra.cdk.config import EventRoute, StackConfig
from infra.cdk.constants import S3_EVENTS
from infra.cdk.events import ModelEvents


def bucket_name_for(config: StackConfig) -> str:
    """The configured bucket, or the one the stack creates: unique per account and region."""
    if config.bucket_name:
        return config.bucket_name
    return f"{config.queue_prefix}-models-{cdk.Aws.ACCOUNT_ID}-{cdk.Aws.REGION}"


def bucket_arn_for(scope: Construct, name: str) -> str:
    return cdk.Stack.of(scope).format_arn(service="s3", region="", account="", resource=name)


@jsii.implements(s3.IBucketNotificationDestination)
class TopicDestination:
    """The topic as a notification destination, granting nothing.

    `s3n.SnsDestination` adds its own statement to the topic's policy, conditioned on `ArnLike
    aws:SourceArn` alone: a bucket of the same name in another account could then publish. This one
    only names the topic and waits for the stack's strict policy (this bucket's ARN and this account).
    """

    def __init__(self, topic: sns.ITopic, policy: IConstruct) -> None:
        self._topic = topic
        self._policy = policy

    def bind(self, scope: Construct, bucket: IBucketRef) -> s3.BucketNotificationDestinationConfig:
        return s3.BucketNotificationDestinationConfig(
            arn=self._topic.topic_arn,
            type=s3.BucketNotificationDestinationType.TOPIC,
            dependencies=[self._policy],
        )


def encryption(scope: Construct, config: StackConfig) -> dict[str, Any]:
    """SSE-S3, or SSE-KMS with the configured key (and an S3 bucket key, which saves most KMS calls)."""
    if not config.bucket_kms_key_arn:
        return {"encryption": s3.BucketEncryption.S3_MANAGED}
    return {
        "encryption": s3.BucketEncryption.KMS,
        "encryption_key": kms.Key.from_key_arn(scope, "Key", config.bucket_kms_key_arn),
        "bucket_key_enabled": True,
    }


# Uploads of large model files are multipart; an interrupted one leaves parts that are billed and unseen.
ABORT_INCOMPLETE_UPLOADS_DAYS = 7


def lifecycle_rules(config: StackConfig) -> list[s3.LifecycleRule]:
    rules = [
        s3.LifecycleRule(
            id="AbortIncompleteUploads",
            abort_incomplete_multipart_upload_after=cdk.Duration.days(ABORT_INCOMPLETE_UPLOADS_DAYS),
        )
    ]
    if config.bucket_versioning:
        rules.append(
            s3.LifecycleRule(
                id="ExpireNoncurrentVersions",
                noncurrent_version_expiration=cdk.Duration.days(config.noncurrent_version_days),
            )
        )
    return rules


class ModelsBucket(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: StackConfig, model_events: ModelEvents | None
    ) -> None:
        """`model_events` None: the bucket alone, with no reference to any other resource (`importBucket`)."""
        super().__init__(scope, construct_id)
        name = bucket_name_for(config)
        self.bucket: s3.IBucket
        if model_events is None:
            self.bucket = self._create(config, name)
        elif config.bucket_name:
            self.bucket = s3.Bucket.from_bucket_name(self, "Existing", name)
            self._notify_existing(config, model_events)
        else:
            self.bucket = self._create(config, name)
            self._notify_created(config, model_events)

    def _create(self, config: StackConfig, name: str) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=name,
            **encryption(self, config),
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=config.bucket_versioning,
            lifecycle_rules=lifecycle_rules(config),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        nag.acknowledge(
            bucket,
            "S1",
            "Server access logs would need a second bucket per deployment; reads are by replicas with "
            "the replica policy, and CloudTrail data events can audit them where required.",
        )
        return bucket

    def _notify_created(self, config: StackConfig, model_events: ModelEvents) -> None:
        cfn_bucket = self.bucket.node.default_child
        assert isinstance(cfn_bucket, s3.CfnBucket)
        if config.event_route is EventRoute.EVENTBRIDGE:
            cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
                event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(
                    event_bridge_enabled=True
                )
            )
            return
        key_filter = None
        if config.models_prefix:
            key_filter = s3.CfnBucket.NotificationFilterProperty(
                s3_key=s3.CfnBucket.S3KeyFilterProperty(
                    rules=[s3.CfnBucket.FilterRuleProperty(name="prefix", value=config.models_prefix)]
                )
            )
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            topic_configurations=[
                s3.CfnBucket.TopicConfigurationProperty(
                    event=event, topic=model_events.topic.topic_arn, filter=key_filter
                )
                for event in S3_EVENTS
            ]
        )
        self.bucket.node.add_dependency(model_events.policy)

    def _notify_existing(self, config: StackConfig, model_events: ModelEvents) -> None:
        # CDK's notifications custom resource merges ours into the bucket's existing configuration.
        if config.event_route is EventRoute.EVENTBRIDGE:
            self.bucket.enable_event_bridge_notification()
        else:
            key_filters = (
                [s3.NotificationKeyFilter(prefix=config.models_prefix)] if config.models_prefix else []
            )
            destination = TopicDestination(model_events.topic, model_events.policy)
            for event_type in (s3.EventType.OBJECT_CREATED, s3.EventType.OBJECT_REMOVED):
                self.bucket.add_event_notification(event_type, destination, *key_filters)
        stack = cdk.Stack.of(self)
        for handler in stack.node.children:
            if handler.node.id.startswith("BucketNotificationsHandler"):
                nag.acknowledge(
                    handler,
                    "IAM4",
                    "CDK's own notifications handler logs with the AWS-managed basic execution policy.",
                    applies_to="Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                )
