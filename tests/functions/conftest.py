"""Fixtures for the janitor: a fresh topic and queue prefix per test on the suite's LocalStack (the SQS and
SNS clients are the suite's, from tests/conftest.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.functions.support import Fleet

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "model-reloader")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ModelReloader")


@pytest.fixture
def replicas(sqs_client: Any, sns_client: Any) -> Iterator[Fleet]:
    """A fresh topic and queue prefix per test, so tests never see each other's queues."""
    unique = uuid.uuid4().hex[:8]
    topic_arn = sns_client.create_topic(Name=f"janitor-test-{unique}")["TopicArn"]
    made = Fleet(sqs_client, sns_client, f"jt{unique}", topic_arn)
    yield made
    for prefix in (made.prefix, f"other{unique}"):
        for url in sqs_client.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []):
            sqs_client.delete_queue(QueueUrl=url)
    sns_client.delete_topic(TopicArn=topic_arn)
