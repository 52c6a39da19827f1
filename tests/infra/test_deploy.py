"""The CDK app deployed to the suite's LocalStack with cdklocal, used as a user would use it:
bootstrap, deploy (without Lambda functions: LocalStack here has no container runtime to run them),
upload under the models prefix, see the event reach a queue subscribed to the deployed topic, run
`reloader serve` in topic mode on the stack's outputs and see it reload a new version; destroy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from infra.cdk.constants import Outputs
from tests.support import REGION, ROOT, Models, PrivateLocalStack, api_spec, wait_until

pytestmark = [
    pytest.mark.localstack,
    pytest.mark.skipif(not (shutil.which("node") and shutil.which("npm")), reason="Node.js and npm are not installed"),
]

CDKLOCAL = ROOT / "node_modules" / ".bin" / "cdklocal"
ACCOUNT = "000000000000"  # LocalStack's default account


class CdkLocal:
    """Runs the pinned cdklocal against one LocalStack endpoint, with this interpreter running the app."""

    def __init__(self, endpoint: str, outdir: Path, context: dict[str, str]) -> None:
        self.outdir = outdir
        self.context = [arg for key, value in context.items() for arg in ("-c", f"{key}={value}")]
        self.env = {
            **os.environ,
            # Loopback only: without these cdklocal targets localhost.localstack.cloud, a public DNS name.
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_S3_FORCE_PATH_STYLE": "1",
            "AWS_ENVAR_ALLOWLIST": "AWS_REGION,AWS_DEFAULT_REGION",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "CDK_DISABLE_VERSION_CHECK": "1",
            "CDK_DISABLE_CLI_TELEMETRY": "true",
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "1",
        }

    def __call__(self, *args: str, timeout: float = 600) -> float:
        """Run `cdklocal <args>`; return the seconds it took."""
        command = [
            str(CDKLOCAL),
            *args,
            "--app",
            f"{sys.executable} -m infra.cdk.app",
            "--output",
            str(self.outdir),
            "--no-notices",
            *self.context,
        ]
        started = time.monotonic()
        done = subprocess.run(
            command, check=False, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        return time.monotonic() - started


def ensure_cdklocal() -> None:
    if not CDKLOCAL.exists():  # `make test` installs it; a bare pytest run does it here
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT, check=True, timeout=600)


@pytest.fixture(scope="module")
def aws_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This module's own LocalStack, with CloudWatch for the stack's alarms (the suite's runs without:
    LocalStack's CloudWatch doubles the S3 -> SQS event latency the other tests and the benchmark see)."""
    instance = PrivateLocalStack(tmp_path_factory.mktemp("localstack-cdk"), extra_services="cloudwatch")
    instance.start()
    try:
        yield instance.endpoint
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def deployed(aws_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The stack's outputs, after bootstrap and deploy; destroyed (and its kept bucket removed) after."""
    ensure_cdklocal()
    unique = uuid.uuid4().hex[:6]
    context = {
        "functions": "false",
        "stackName": f"ReloaderTest{unique}",
        "queuePrefix": f"rt{unique}",
        "fixedQueues": "1",
    }
    cdklocal = CdkLocal(aws_endpoint, tmp_path_factory.mktemp("cdk.out"), context)
    timings = {"bootstrap": cdklocal("bootstrap", f"aws://{ACCOUNT}/{REGION}")}
    timings["deploy"] = cdklocal("deploy", "--require-approval", "never")
    cloudformation = boto3.client("cloudformation", endpoint_url=aws_endpoint, region_name=REGION)
    [stack] = cloudformation.describe_stacks(StackName=context["stackName"])["Stacks"]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}
    try:
        yield outputs
    finally:
        timings["destroy"] = cdklocal("destroy", "--force")
        print(f"cdklocal timings (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
        remove_bucket(boto3.client("s3", endpoint_url=aws_endpoint, region_name=REGION), outputs[Outputs.BUCKET_NAME])
        left = [
            summary["StackStatus"]
            for summary in cloudformation.list_stacks()["StackSummaries"]
            if summary["StackName"] == context["stackName"] and summary["StackStatus"] != "DELETE_COMPLETE"
        ]
        assert not left, f"the stack is still there after destroy: {left}"


def remove_bucket(s3: Any, name: str) -> None:
    """The stack keeps its bucket on destroy (models outlive stacks); the test removes it itself."""
    try:
        Models(s3, name).delete_prefix("")
        s3.delete_bucket(Bucket=name)
    except s3.exceptions.NoSuchBucket:
        pass  # LocalStack may delete it with the stack


def reloading_block(outputs: dict[str, str], key: str) -> dict[str, Any]:
    parsed = yaml.safe_load(outputs[key])
    assert set(parsed) == {"reloading"}
    return dict(parsed["reloading"])


def test_outputs_name_the_deployed_resources(deployed: dict[str, str], aws_endpoint: str) -> None:
    topic_mode = reloading_block(deployed, Outputs.RELOADING_TOPIC_MODE)
    assert topic_mode["topic_arn"] == deployed[Outputs.TOPIC_ARN]
    assert topic_mode["queue_prefix"] == deployed[Outputs.QUEUE_PREFIX]
    queue_mode = reloading_block(deployed, Outputs.reloading_queue_mode(1))
    assert queue_mode["queue_url"] == deployed[Outputs.queue_url(1)]
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name=REGION)
    assert s3.get_bucket_encryption(Bucket=deployed[Outputs.BUCKET_NAME])["ServerSideEncryptionConfiguration"]
    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name=REGION)
    attributes = sqs.get_queue_attributes(QueueUrl=deployed[Outputs.queue_url(1)], AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 5


def test_the_kubernetes_values_command_reads_the_real_outputs_file(deployed: dict[str, str]) -> None:
    from infra.kubernetes_values import kubernetes_values, stack_outputs

    # GIVEN the outputs as `cdk deploy --outputs-file` writes them (one stack, its outputs)
    document = json.loads(json.dumps({"Stack": deployed}))
    # WHEN turned into the manifests' values THEN they name the deployed topic, prefix and region
    values = kubernetes_values(stack_outputs(document, None))
    assert values["RELOADER_TOPIC_ARN"] == deployed[Outputs.TOPIC_ARN]
    assert values["RELOADER_QUEUE_PREFIX"] == deployed[Outputs.QUEUE_PREFIX]
    assert values["AWS_REGION"] == REGION
    assert values["EKS_ROLE_ARN"] == ""  # no EKS role in this deployment


def test_an_upload_under_the_prefix_reaches_a_queue_subscribed_to_the_topic(
    deployed: dict[str, str], aws_endpoint: str
) -> None:
    # GIVEN the stack's fixed queue, subscribed to the deployed topic
    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name=REGION)
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name=REGION)
    queue_url = deployed[Outputs.queue_url(1)]
    bucket = deployed[Outputs.BUCKET_NAME]
    # WHEN one object is put outside the models prefix and one inside
    s3.put_object(Bucket=bucket, Key="elsewhere/notes.txt", Body=b"not a model")
    key = f"{deployed[Outputs.MODELS_PREFIX]}probe/1/model.pkl"
    s3.put_object(Bucket=bucket, Key=key, Body=b"probe")

    # THEN the queue receives the S3 event for the model key, wrapped by SNS, and none for the other
    keys: list[str] = []

    def received_model_key() -> bool:
        for message in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            envelope = json.loads(message["Body"])
            assert envelope["TopicArn"] == deployed[Outputs.TOPIC_ARN]
            body = json.loads(envelope["Message"])
            keys.extend(record["s3"]["object"]["key"] for record in body.get("Records", []))  # not s3:TestEvent
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return key in keys

    wait_until(received_model_key, timeout=30, what=f"the S3 event for {key} on the fixed queue")
    assert "elsewhere/notes.txt" not in keys


def test_reloader_in_topic_mode_reloads_a_new_version_through_the_deployed_topic(
    deployed: dict[str, str], aws_endpoint: str, serve: Any
) -> None:
    # GIVEN version 1 in the deployed bucket, and a replica configured from the stack's output block,
    # with full scans an hour apart so that only an event can bring version 2
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name=REGION)
    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name=REGION)
    models = Models(s3, deployed[Outputs.BUCKET_NAME])
    prefix = f"{deployed[Outputs.MODELS_PREFIX]}iris"
    reloading = {
        **reloading_block(deployed, Outputs.RELOADING_TOPIC_MODE),
        "interval": 3600,
        "replica_id": "r1",
    }
    models.put_version(prefix, 1, tag=1.0, marker=reloading["ready_marker"])
    spec = api_spec({"path": f"s3://{deployed[Outputs.BUCKET_NAME]}/{prefix}"}, reloading=reloading)
    server = serve.start(serve.spec(spec))
    assert predicted(server) == 1.0

    own_queue = f"{deployed[Outputs.QUEUE_PREFIX]}-test-api-r1"

    def queue_created() -> bool:
        return bool(sqs.list_queues(QueueNamePrefix=own_queue).get("QueueUrls"))

    wait_until(queue_created, timeout=20, what=f"the replica's own queue {own_queue}")

    # WHEN version 2 is uploaded, marker last
    models.put_version(prefix, 2, tag=2.0, marker=reloading["ready_marker"])
    # THEN the replica serves it, long before any full scan
    wait_until(lambda: predicted(server) == 2.0, timeout=60, what="version 2 served through the topic")


def predicted(server: Any) -> float:
    response = server.post({})
    assert response.status_code == 200, response.text
    return float(response.json()["prediction"])
