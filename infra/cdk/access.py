"""What a replica may do, and nothing more: read models under the prefix, use queues under the queue
prefix (its own, created in topic mode, or the stack's fixed ones), and subscribe its own queues (SQS,
under the prefix, in this account and region) to this topic.

The stack's fixed queues and their DLQs match the prefix too; an explicit Deny keeps replicas to
receiving from them: they cannot create, tag, reconfigure or delete them.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.cdk import nag
from infra.cdk.config import StackConfig

# What a replica does with its own queues (topic mode) and no more with the stack's (queue mode).
QUEUE_ADMIN_ACTIONS = (
    "sqs:CreateQueue",
    "sqs:TagQueue",
    "sqs:SetQueueAttributes",
    "sqs:DeleteQueue",
)
QUEUE_USE_ACTIONS = (
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
)
QUEUE_ACTIONS = QUEUE_ADMIN_ACTIONS + QUEUE_USE_ACTIONS


def queues_arn(scope: Construct, config: StackConfig) -> str:
    """`arn:<partition>:sqs:<region>:<account>:<queuePrefix>-*`: the queues of this deployment."""
    return cdk.Stack.of(scope).format_arn(service="sqs", resource=config.queue_name_pattern)


def fixed_queues_denial(sid: str, actions: Sequence[str], arns: Sequence[str]) -> list[iam.PolicyStatement]:
    """Deny `actions` on the stack's fixed queues and their DLQs, which the `<queuePrefix>-*` allows
    also match: the stack owns them, replicas and the janitor only use or skip them."""
    if not arns:
        return []
    return [iam.PolicyStatement(sid=sid, effect=iam.Effect.DENY, actions=list(actions), resources=list(arns))]


def decrypt_models(config: StackConfig) -> list[iam.PolicyStatement]:
    """With an SSE-KMS bucket: kms:Decrypt on that key, only in S3's name (GetObject), in this region."""
    if not config.bucket_kms_key_arn:
        return []
    return [
        iam.PolicyStatement(
            sid="DecryptModels",
            actions=["kms:Decrypt"],
            resources=[config.bucket_kms_key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{cdk.Aws.REGION}.amazonaws.com"}},
        )
    ]


class ReplicaAccess(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        bucket_arn: str,
        topic: sns.ITopic,
        fixed_queue_arns: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        queues = queues_arn(self, config)
        models = f"{bucket_arn}/{config.models_prefix}*"
        list_models = iam.PolicyStatement(sid="ListModels", actions=["s3:ListBucket"], resources=[bucket_arn])
        if config.models_prefix:
            list_models.add_condition("StringLike", {"s3:prefix": [f"{config.models_prefix}*"]})
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description="model-reloader replicas: read models, use their queues, subscribe them to the topic",
            statements=[
                list_models,
                iam.PolicyStatement(sid="ReadModels", actions=["s3:GetObject"], resources=[models]),
                iam.PolicyStatement(sid="UseQueues", actions=list(QUEUE_ACTIONS), resources=[queues]),
                iam.PolicyStatement(
                    sid="SubscribeQueues",
                    actions=["sns:Subscribe"],
                    resources=[topic.topic_arn],
                    conditions={"StringEquals": {"sns:Protocol": "sqs"}, "StringLike": {"sns:Endpoint": queues}},
                ),
                iam.PolicyStatement(sid="UnsubscribeQueues", actions=["sns:Unsubscribe"], resources=[topic.topic_arn]),
                *fixed_queues_denial("KeepFixedQueues", QUEUE_ADMIN_ACTIONS, fixed_queue_arns),
                *decrypt_models(config),
            ],
        )
        for resource, why in (
            (models, "Objects under the models prefix: each model version is a folder of objects."),
            (queues, "Replicas create their own queues at start (topic mode), named under the queue prefix."),
        ):
            nag.acknowledge(
                self.policy,
                "IAM5",
                why,
                applies_to=f"Resource::{nag.finding_text(cdk.Stack.of(self), resource)}",
            )
        self.role: iam.Role | None = None
        if config.replica_role_service:
            self.role = iam.Role(
                self,
                "Role",
                description="model-reloader replicas",
                assumed_by=iam.ServicePrincipal(config.replica_role_service),
                managed_policies=[self.policy],
            )
