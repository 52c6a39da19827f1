"""One stack: bucket -> events -> topic -> queues, the replicas' access, the janitor, and the outputs
a user pastes into the API spec."""

from __future__ import annotations

import json

import aws_cdk as cdk
from constructs import Construct

from infra.cdk.access import ReplicaAccess
from infra.cdk.bucket import ModelsBucket, bucket_arn_for, bucket_name_for
from infra.cdk.config import StackConfig
from infra.cdk.constants import Outputs
from infra.cdk.eks import EksReplicaRole, eks_access
from infra.cdk.events import ModelEvents
from infra.cdk.janitor import Janitor
from infra.cdk.queues import FixedQueues


class ModelReloaderStack(cdk.Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: StackConfig, env: cdk.Environment | None = None
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description="model-reloader: models bucket, S3 events fan-out, replica access",
        )
        self.config = config
        if config.import_bucket:
            # What `cdk import` adds to an empty stack: the kept bucket, same logical id, no references.
            ModelsBucket(self, "Models", config=config, model_events=None)
            return
        bucket_name = bucket_name_for(config)
        bucket_arn = bucket_arn_for(self, bucket_name)
        self.events = ModelEvents(
            self, "Events", config=config, bucket_name=bucket_name, bucket_arn=bucket_arn
        )
        self.models = ModelsBucket(self, "Models", config=config, model_events=self.events)
        self.fixed_queues = FixedQueues(self, "FixedQueues", config=config, topic=self.events.topic)
        self.access = ReplicaAccess(
            self,
            "Replicas",
            config=config,
            bucket_arn=bucket_arn,
            topic=self.events.topic,
            fixed_queue_arns=self.fixed_queues.arns,
        )
        self.eks = (
            EksReplicaRole(self, "Eks", config=config, policy=self.access.policy) if eks_access(config) else None
        )
        self.janitor = (
            Janitor(self, "Janitor", config=config, topic=self.events.topic, fixed_queue_arns=self.fixed_queues.arns)
            if config.functions
            else None
        )
        self._outputs()

    def _outputs(self) -> None:
        config = self.config
        output = self._output
        output(Outputs.BUCKET_NAME, self.models.bucket.bucket_name, "The models bucket")
        output(Outputs.MODELS_PREFIX, config.models_prefix, "Key prefix under which models live")
        output(
            Outputs.TOPIC_ARN, self.events.topic.topic_arn, "SNS topic of the models' S3 events (topic mode)"
        )
        output(Outputs.QUEUE_PREFIX, config.queue_prefix, "Name prefix of replica queues (`queue_prefix`)")
        output(
            Outputs.REPLICA_POLICY_ARN, self.access.policy.managed_policy_arn, "Attach to the replicas' role"
        )
        if self.access.role:
            output(Outputs.REPLICA_ROLE_ARN, self.access.role.role_arn, "Role for the replicas")
        if self.eks:
            output(Outputs.REPLICA_ROLE_ARN, self.eks.role.role_arn, "Role for the replicas' service account")
            output(Outputs.EKS_ACCESS, str(self.eks.access), "How pods get the role: irsa or pod-identity")
            output(
                Outputs.EKS_SERVICE_ACCOUNT,
                f"{config.eks_namespace}/{config.eks_service_account}",
                "The replicas' Kubernetes namespace/service account the role is limited to",
            )
        output(
            Outputs.RELOADING_TOPIC_MODE,
            self.reloading_block(topic_arn=self.events.topic.topic_arn, queue_prefix=config.queue_prefix),
            "Paste into the API spec: every replica creates and owns its queue",
        )
        for number, queue in enumerate(self.fixed_queues.queues, start=1):
            output(Outputs.queue_url(number), queue.queue_url, f"Fixed queue {number} (queue mode)")
            output(
                Outputs.reloading_queue_mode(number),
                self.reloading_block(queue_url=queue.queue_url),
                f"Paste into the API spec of the replica that consumes fixed queue {number}",
            )
        if self.janitor:
            output(
                Outputs.JANITOR_FUNCTION, self.janitor.function.function_name, "The janitor Lambda function"
            )

    def reloading_block(self, **source: str) -> str:
        """A one-line YAML `reloading:` block (a JSON flow mapping), with tokens left for CloudFormation."""
        fields = {
            **source,
            "ready_marker": self.config.ready_marker,
            "visibility_timeout": self.config.visibility_timeout,
        }
        # JSON is YAML; tokens survive json.dumps as strings and CloudFormation substitutes them.
        return f"reloading: {json.dumps(fields)}"

    def _output(self, key: str, value: str, description: str) -> None:
        cdk.CfnOutput(self, key, value=value, description=description)
