"""Names shared by the CDK app and its tests, so that neither restates the other's literals."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = ROOT / "functions"

STACK_NAME = "ModelReloader"
SERVICE_NAME = "model-reloader"
METRICS_NAMESPACE = "ModelReloader"

# Fixed (queue-mode) queues are `<prefix>--fixed-<n>`: the double hyphen can never begin an agent-owned
# `<prefix>-<api>-<replica>` name (API names and host names start with a letter or digit).
FIXED_QUEUE_INFIX = "-fixed-"

# What leaves the bucket: the same two families in both routes.
S3_EVENTS = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")
EVENTBRIDGE_DETAIL_TYPES = ("Object Created", "Object Deleted")

# The janitor's Lambda: the asset is `functions/`, so the package keeps its name and relative imports.
JANITOR_HANDLER = "janitor.handler.handler"
POWERTOOLS_LAYER_PARAMETER = "/aws/service/powertools/python/x86_64/{runtime}/{version}"


class Outputs:
    """Stack output keys (CloudFormation `OutputKey`s)."""

    BUCKET_NAME = "BucketName"
    MODELS_PREFIX = "ModelsPrefix"
    TOPIC_ARN = "TopicArn"
    QUEUE_PREFIX = "QueuePrefix"
    REPLICA_POLICY_ARN = "ReplicaPolicyArn"
    REPLICA_ROLE_ARN = "ReplicaRoleArn"
    RELOADING_TOPIC_MODE = "ReloadingTopicMode"
    EKS_ACCESS = "EksAccess"  # irsa | pod-identity
    EKS_SERVICE_ACCOUNT = "EksServiceAccount"  # <namespace>/<name>
    JANITOR_FUNCTION = "JanitorFunctionName"

    @staticmethod
    def queue_url(number: int) -> str:
        return f"FixedQueue{number}Url"

    @staticmethod
    def reloading_queue_mode(number: int) -> str:
        return f"ReloadingQueueMode{number}"
