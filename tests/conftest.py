"""Shared fixtures: a real LocalStack (started once per run on a free port, unless AWS_ENDPOINT_URL is set),
S3 clients, fresh buckets, and `reloader serve` run as a real process on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.support import LOCALSTACK_SCRIPT, REGION, PrivateLocalStack, ServeFactory, free_port, localstack_answers

# LocalStack accepts any credentials: these are used when the environment names none.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
os.environ.setdefault("AWS_REGION", REGION)


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    """The AWS endpoint for tests: AWS_ENDPOINT_URL if set, else a LocalStack this run starts and stops."""
    configured = os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        yield configured
        return
    # Without LOCALSTACK_PORT, a LocalStack of this run's own on a free port: another run's LocalStack,
    # which may stop under us, is never borrowed. With it, one already answering there is used.
    chosen = os.environ.get("LOCALSTACK_PORT")
    port = int(chosen) if chosen else free_port()
    endpoint = f"http://127.0.0.1:{port}"
    home = Path(tempfile.mkdtemp(prefix="localstack-tests-"))
    env = {**os.environ, "LOCALSTACK_PORT": str(port), "LOCALSTACK_HOME": str(home)}
    started = not (chosen and localstack_answers(endpoint))
    if started:
        subprocess.run([str(LOCALSTACK_SCRIPT), "start"], check=True, env=env)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        yield endpoint
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        if started:
            subprocess.run([str(LOCALSTACK_SCRIPT), "stop"], check=False, env=env)


@pytest.fixture(scope="session")
def s3_client(aws_endpoint: str):
    return boto3.client("s3", endpoint_url=aws_endpoint, region_name=REGION)


@pytest.fixture
def bucket(s3_client) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        for item in page.get("Contents", ()):
            s3_client.delete_object(Bucket=name, Key=item["Key"])
    s3_client.delete_bucket(Bucket=name)


@pytest.fixture
def serve(aws_endpoint: str, tmp_path: Path) -> Iterator[ServeFactory]:
    factory = ServeFactory(tmp_path, aws_endpoint)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def sqs_client(aws_endpoint: str):
    return boto3.client("sqs", endpoint_url=aws_endpoint, region_name=REGION)


@pytest.fixture(scope="session")
def sns_client(aws_endpoint: str):
    return boto3.client("sns", endpoint_url=aws_endpoint, region_name=REGION)


@pytest.fixture
def private_localstack(aws_endpoint: str, tmp_path: Path) -> Iterator[PrivateLocalStack]:
    instance = PrivateLocalStack(tmp_path / "localstack")
    instance.start()
    yield instance
    instance.stop()
