"""The app's settings, read from CDK context (`cdk.json` or `-c key=value`), validated before synthesis.

Every setting is one documented field with a default; docs/deployment.md lists them and a test keeps
that table equal to this model. Values given with `-c` arrive as strings ("2", "false"): pydantic's
lax mode turns them into the declared types, and a bad value stops synthesis with its context key.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from infra.cdk.constants import FIXED_QUEUE_INFIX, STACK_NAME


class EventRoute(StrEnum):
    NOTIFICATIONS = "notifications"  # S3 event notifications straight to the topic
    EVENTBRIDGE = "eventbridge"  # S3 -> EventBridge -> rule -> topic


class ConfigError(ValueError):
    """A context value the app cannot work with; the message names the context key."""


class StackConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    stack_name: str = Field(STACK_NAME, alias="stackName", description="CloudFormation stack name.")
    queue_prefix: str = Field(
        "reloader",
        alias="queuePrefix",
        description="Name prefix of every queue (the agent's `queue_prefix`) and of the created bucket: "
        "lowercase letters and digits, at most 20, no `-`. Replicas may only touch queues under it; the "
        "janitor only deletes queues under it.",
    )
    bucket_name: str | None = Field(
        None,
        alias="bucketName",
        description="An existing bucket to use. Default: the stack creates "
        "`<queuePrefix>-models-<account>-<region>`.",
    )
    bucket_versioning: bool = Field(
        False, alias="bucketVersioning", description="Turn on object versioning (created bucket only)."
    )
    bucket_kms_key_arn: str | None = Field(
        None,
        alias="bucketKmsKeyArn",
        pattern=r"^arn:[a-z-]+:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$",
        description="A KMS key the models are encrypted with: replicas may use it to decrypt through S3 "
        "(`kms:ViaService`), and a created bucket uses it as its default encryption (SSE-KMS, bucket "
        "key on). Default: SSE-S3.",
    )
    noncurrent_version_days: int = Field(
        30,
        alias="noncurrentVersionDays",
        ge=1,
        le=3650,
        description="With bucketVersioning: days after which a replaced or deleted object's earlier "
        "version is expired (created bucket only).",
    )
    models_prefix: str = Field(
        "models/",
        alias="modelsPrefix",
        description="Key prefix of the models; notifications and replica access are limited to it.",
    )
    event_route: EventRoute = Field(
        EventRoute.NOTIFICATIONS,
        alias="eventRoute",
        description="`notifications` (S3 -> SNS) or `eventbridge` (S3 -> EventBridge rule -> SNS), for "
        "buckets whose notification configuration is already used by something else.",
    )
    fixed_queues: int = Field(
        0,
        alias="fixedQueues",
        ge=0,
        le=50,
        description="Queues the stack creates for fixed replicas (queue mode).",
    )
    visibility_timeout: int = Field(
        300,
        alias="visibilityTimeout",
        ge=0,
        le=43200,
        description="Seconds a received message stays hidden (fixed queues; also in the `reloading:` "
        "outputs).",
    )
    max_receive_count: int = Field(
        5, alias="maxReceiveCount", ge=1, le=1000, description="Receives before a message moves to the DLQ."
    )
    ready_marker: str = Field(
        "_READY", alias="readyMarker", description="`ready_marker` written into the `reloading:` outputs."
    )
    replica_role_service: str | None = Field(
        None,
        alias="replicaRoleService",
        description="Also create a role with the replica policy, assumable by this service principal "
        "(e.g. `ec2.amazonaws.com`, `ecs-tasks.amazonaws.com`). Default: policy only.",
    )
    eks_oidc_issuer: str | None = Field(
        None,
        alias="eksOidcIssuer",
        pattern=r"^https://[A-Za-z0-9.-]+(/[A-Za-z0-9._-]+)*$",
        description="EKS with IAM roles for service accounts (IRSA): the cluster's OIDC issuer URL (`aws eks "
        "describe-cluster --query cluster.identity.oidc.issuer`), whose IAM OIDC provider exists in the "
        "account. Creates a role with the replica policy that only the service account `eksServiceAccount` "
        "in `eksNamespace` may assume.",
    )
    eks_pod_identity_cluster: str | None = Field(
        None,
        alias="eksPodIdentityCluster",
        pattern=r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$",
        description="EKS Pod Identity: the cluster's name. Creates a role with the replica policy trusted by "
        "`pods.eks.amazonaws.com` for that cluster, namespace and service account, and the Pod Identity "
        "association binding it to them (the cluster needs the eks-pod-identity-agent add-on).",
    )
    eks_namespace: str = Field(
        "model-reloader",
        alias="eksNamespace",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="With eksOidcIssuer or eksPodIdentityCluster: the Kubernetes namespace of the replicas "
        "(the manifests' `namespace`).",
    )
    eks_service_account: str = Field(
        "reloader",
        alias="eksServiceAccount",
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
        description="With eksOidcIssuer or eksPodIdentityCluster: the replicas' service account (the "
        "manifests' `reloader`).",
    )
    functions: bool = Field(
        True,
        description="Include the Lambda functions (the janitor). `false` leaves them out, for LocalStack "
        "without a container runtime.",
    )
    import_bucket: bool = Field(
        False,
        alias="importBucket",
        description="Synthesise the created bucket alone, for `cdk import` of the bucket a destroyed stack "
        "kept (see docs/deployment.md); then deploy without it.",
    )
    janitor_rate_minutes: int = Field(
        15, alias="janitorRateMinutes", ge=1, le=1440, description="Minutes between janitor runs."
    )
    heartbeat_ttl_seconds: int = Field(
        3600,
        alias="heartbeatTtlSeconds",
        ge=600,
        description="A replica queue whose heartbeat tag is older than this is deleted by the janitor.",
    )
    powertools_version: str = Field(
        "3.37.0",
        alias="powertoolsVersion",
        pattern=r"^\d+\.\d+\.\d+$",
        description="Version of the public Powertools Lambda layer the janitor runs with.",
    )

    @field_validator("queue_prefix")
    @classmethod
    def _prefix_cannot_overlap(cls, value: str) -> str:
        # Queues are `<prefix>-...`, and IAM patterns and the janitor's listing are `<prefix>-*`: with a
        # '-' in it, the prefix `reloader` would also cover every queue of a stack with `reloader-b`.
        if "-" in value:
            raise ValueError(
                f"queuePrefix {value!r} contains '-': stacks' queue patterns would overlap (`reloader-*` "
                "also matches `reloader-b-...`); use lowercase letters and digits only, e.g. 'reloaderb'"
            )
        if not re.fullmatch(r"[a-z0-9]{1,20}", value):
            raise ValueError(f"queuePrefix: expected 1 to 20 lowercase letters and digits, found {value!r}")
        return value

    @field_validator("models_prefix")
    @classmethod
    def _prefix_is_a_folder(cls, value: str) -> str:
        if value.startswith("/") or (value and not value.endswith("/")):
            raise ValueError(
                f"expected a key prefix like 'models/' (no leading '/', a trailing '/'), found {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _existing_bucket_needs_functions(self) -> StackConfig:
        # An existing bucket's notification settings can only be changed through CDK's notifications
        # custom resource, which is a Lambda function.
        if self.bucket_name and not self.functions:
            raise ValueError(
                "bucketName (an existing bucket) needs functions=true: its notifications are set by a "
                "Lambda-backed custom resource"
            )
        return self

    @model_validator(mode="after")
    def _one_replica_role(self) -> StackConfig:
        chosen = [
            key
            for key, value in (
                ("replicaRoleService", self.replica_role_service),
                ("eksOidcIssuer", self.eks_oidc_issuer),
                ("eksPodIdentityCluster", self.eks_pod_identity_cluster),
            )
            if value
        ]
        if len(chosen) > 1:
            raise ValueError(f"expected at most one way to create the replica role, found {' and '.join(chosen)}")
        return self

    @model_validator(mode="after")
    def _import_needs_a_created_bucket(self) -> StackConfig:
        if self.import_bucket and self.bucket_name:
            raise ValueError("importBucket imports the bucket the stack creates; with bucketName there is none")
        return self

    @classmethod
    def from_context(cls, get: Any) -> StackConfig:
        """Build from a `try_get_context`-like callable; unset keys take their defaults."""
        keys = {field.alias or name for name, field in cls.model_fields.items()}
        values = {key: get(key) for key in keys}
        try:
            return cls.model_validate({key: value for key, value in values.items() if value is not None})
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in item['loc']) or 'context'}: {item['msg']}"
                for item in error.errors()
            )
            raise ConfigError(f"invalid CDK context: {problems}") from error

    @property
    def queue_name_pattern(self) -> str:
        """Every queue the stack or a replica may create matches `<queuePrefix>-*`."""
        return f"{self.queue_prefix}-*"

    def fixed_queue_name(self, number: int) -> str:
        return f"{self.queue_prefix}-{FIXED_QUEUE_INFIX}{number}"
