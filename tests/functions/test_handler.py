"""The janitor's Lambda handler, as Lambda calls it: a scheduled EventBridge event, a context,
settings from the environment; it sweeps, logs as JSON and emits metrics in EMF."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

from agent.domain import fleet
from functions.janitor import handler as janitor_handler
from tests.functions.support import Fleet
from tests.support import event_fixture

pytestmark = pytest.mark.localstack


@dataclass
class FakeContext:
    function_name: str = "ModelReloader-JanitorFunction"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:ModelReloader-JanitorFunction"
    aws_request_id: str = "5b1d7a5a-5f5e-4d3a-9d55-1c5d8f0b6a01"


def emitted_metrics(output: str) -> dict[str, Any]:
    """The values of the EMF documents Powertools printed."""
    values: dict[str, Any] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                values[metric["Name"]] = document[metric["Name"]]
    return values


def test_scheduled_invocation_deletes_stale_queues_and_counts_them(
    replicas: Fleet, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the Lambda's environment and one dead and one live replica
    monkeypatch.setenv("QUEUE_PREFIX", replicas.prefix)
    monkeypatch.setenv("TOPIC_ARN", replicas.topic_arn)
    monkeypatch.setenv("HEARTBEAT_TTL_SECONDS", "3600")
    janitor_handler._janitor.cache_clear()
    dead = replicas.replica_queue("iris", "pod-a", heartbeat=time.time() - 7200)
    live = replicas.replica_queue("iris", "pod-b", heartbeat=time.time())
    event = json.loads(event_fixture("janitor_schedule.json"))
    # Powertools' log handler (shared with the core's logger) holds the stdout of import time: read it here.
    logs = io.StringIO()
    for log_handler in janitor_handler.logger.handlers:
        monkeypatch.setattr(log_handler, "stream", logs)

    # WHEN EventBridge's schedule invokes the handler
    result = janitor_handler.handler(event, FakeContext())

    # THEN the dead replica's queues are gone and the live one's stay
    assert sorted(result["deleted"]) == [dead, dead + fleet.DLQ_SUFFIX]
    assert replicas.names() == {live, live + fleet.DLQ_SUFFIX}
    # AND the metrics say so, and the log lines carry the Lambda context
    output = capsys.readouterr().out
    assert emitted_metrics(output) == {"QueuesChecked": [2.0], "QueuesDeleted": [2.0], "QueuesFailed": [0.0]}
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    deleted = [line for line in lines if str(line["message"]).startswith("janitor: deleted stale queue")]
    assert [line["queue"] for line in deleted] == [dead]
    assert all(line["function_request_id"] == FakeContext.aws_request_id for line in lines)
    janitor_handler._janitor.cache_clear()


def test_a_sweep_with_a_failure_finishes_counts_it_and_fails_the_invocation(
    replicas: Fleet, sns_client: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a dead replica whose queue cannot be unsubscribed (the janitor's topic is gone, and the
    # queue carries no subscription tag), and another dead replica that can be removed
    monkeypatch.setenv("QUEUE_PREFIX", replicas.prefix)
    monkeypatch.setenv("TOPIC_ARN", replicas.topic_arn)
    monkeypatch.setenv("HEARTBEAT_TTL_SECONDS", "3600")
    janitor_handler._janitor.cache_clear()
    stuck = replicas.replica_queue("iris", "pod-a", heartbeat=time.time() - 7200, tag_subscription=False)
    removable = replicas.replica_queue("iris", "pod-b", heartbeat=time.time() - 7200)
    sns_client.delete_topic(TopicArn=replicas.topic_arn)
    event = json.loads(event_fixture("janitor_schedule.json"))

    # WHEN the schedule invokes the handler THEN the invocation fails, naming the queue (Lambda's
    # Errors metric counts it)
    with pytest.raises(janitor_handler.SweepFailed, match=stuck):
        janitor_handler.handler(event, FakeContext())
    # AND the rest of the sweep was done, and the metrics were still emitted
    assert not replicas.exists(removable)
    assert replicas.exists(stuck)
    assert emitted_metrics(capsys.readouterr().out) == {
        "QueuesChecked": [2.0],
        "QueuesDeleted": [2.0],
        "QueuesFailed": [1.0],
    }
    janitor_handler._janitor.cache_clear()


def test_an_event_that_is_not_from_eventbridge_is_refused() -> None:
    with pytest.raises(Exception, match="validation error"):
        janitor_handler.handler({"hello": "world"}, FakeContext())
