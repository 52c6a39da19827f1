"""The janitor: a scheduled Lambda that deletes the queues of replicas that stopped heart-beating.

The function's code is `functions/` (so `janitor` stays a package); Powertools comes from its public
layer, whose ARN CloudFormation resolves from Powertools' public SSM parameter for the pinned version.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.cdk import nag
from infra.cdk.access import fixed_queues_denial, queues_arn
from infra.cdk.config import StackConfig
from infra.cdk.constants import (
    FUNCTIONS_DIR,
    JANITOR_HANDLER,
    METRICS_NAMESPACE,
    POWERTOOLS_LAYER_PARAMETER,
    SERVICE_NAME,
)

# Lambda runtime and the Powertools layer built for it.
RUNTIME = lambda_.Runtime.PYTHON_3_14


class Janitor(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        topic: sns.ITopic,
        fixed_queue_arns: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        log_group = logs.LogGroup(
            self, "Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=cdk.RemovalPolicy.DESTROY
        )
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self._grant(role, config, topic, log_group, fixed_queue_arns)
        layer_arn = cdk.CfnDynamicReference(
            cdk.CfnDynamicReferenceService.SSM,
            POWERTOOLS_LAYER_PARAMETER.format(runtime=RUNTIME.name, version=config.powertools_version),
        ).to_string()
        self.function = lambda_.Function(
            self,
            "Function",
            description="Deletes replica queues whose heartbeat is older than the TTL",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler=JANITOR_HANDLER,
            code=lambda_.Code.from_asset(
                str(FUNCTIONS_DIR), exclude=["**/__pycache__", "**/*.pyc", "**/.mypy_cache"]
            ),
            layers=[lambda_.LayerVersion.from_layer_version_arn(self, "Powertools", layer_arn)],
            role=role,
            log_group=log_group,
            timeout=cdk.Duration.minutes(5),
            memory_size=256,
            # One sweep at a time (two are safe, but pointless), and no asynchronous retries: a failed
            # sweep raises, counts once in the Errors metric, and the next scheduled run tries again.
            reserved_concurrent_executions=1,
            retry_attempts=0,
            environment={
                "QUEUE_PREFIX": config.queue_prefix,
                "TOPIC_ARN": topic.topic_arn,
                "HEARTBEAT_TTL_SECONDS": str(config.heartbeat_ttl_seconds),
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
        )
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="Runs the model-reloader janitor",
            schedule=events.Schedule.rate(cdk.Duration.minutes(config.janitor_rate_minutes)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
        self.errors_alarm = cloudwatch.Alarm(
            self,
            "ErrorsAlarm",
            alarm_description="model-reloader: a janitor sweep failed (a queue could not be removed, or "
            "listing failed); see the function's logs",
            metric=self.function.metric_errors(period=cdk.Duration.minutes(config.janitor_rate_minutes)),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _grant(
        self,
        role: iam.Role,
        config: StackConfig,
        topic: sns.ITopic,
        log_group: logs.LogGroup,
        fixed_queue_arns: Sequence[str],
    ) -> None:
        stack = cdk.Stack.of(self)
        queues = queues_arn(self, config)
        every_queue = stack.format_arn(service="sqs", resource="*")
        statements = [
            iam.PolicyStatement(
                sid="WriteLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            ),
            # ListQueues authorises on the account's queues as a whole; the call itself filters by prefix.
            iam.PolicyStatement(sid="ListQueues", actions=["sqs:ListQueues"], resources=[every_queue]),
            iam.PolicyStatement(
                sid="RemoveStaleQueues",
                actions=["sqs:ListQueueTags", "sqs:GetQueueAttributes", "sqs:DeleteQueue"],
                resources=[queues],
            ),
            iam.PolicyStatement(
                sid="Unsubscribe",
                actions=["sns:Unsubscribe", "sns:ListSubscriptionsByTopic"],
                resources=[topic.topic_arn],
            ),
            # The prefix pattern above also matches the stack's own queues; the core skips them (no
            # topic tag), and this makes it a guarantee.
            *fixed_queues_denial("SpareFixedQueues", ["sqs:DeleteQueue"], fixed_queue_arns),
        ]
        for statement in statements:
            role.add_to_policy(statement)
        for resource, why in (
            (
                queues,
                "The janitor may only delete queues under the queue prefix, whose names replicas choose.",
            ),
            (
                every_queue,
                "sqs:ListQueues has no narrower resource; it is filtered by name prefix in the call.",
            ),
        ):
            nag.acknowledge(role, "IAM5", why, applies_to=f"Resource::{nag.finding_text(stack, resource)}")
