"""Event-driven reloading on LocalStack: S3 notifications through SQS, and SNS fan-out to every replica."""

from __future__ import annotations

import json
import signal

import pytest

from tests.support import (
    Models,
    api_spec,
    metric,
    notify_queue,
    notify_topic,
    prediction,
    s3_event_body,
    tagged_model,
    wait_until,
)

pytestmark = pytest.mark.localstack

NO_SCAN = {"interval": 3600}  # with scans an hour apart, only an event can have caused a reload


def serve_on_events(serve, s3_client, sqs_client, bucket, **reloading):
    """Version 1 of model `m` (with its marker), a notified queue, and an agent on it that scans hourly."""
    models = Models(s3_client, bucket)
    models.put_version("m", 1, tag=1.0, marker="_READY")
    settings = {**NO_SCAN, "queue_url": notify_queue(s3_client, sqs_client, bucket), **reloading}
    return models, serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading=settings)))


def test_queue_mode_serves_an_upload_from_its_event(serve, s3_client, sqs_client, bucket):
    # GIVEN a bucket whose notifications go to a queue, and an agent that scans only hourly
    models, server = serve_on_events(serve, s3_client, sqs_client, bucket, ready_marker="_READY")
    assert prediction(server) == 1.0

    # WHEN version 2 is uploaded THEN the event alone gets it served
    models.put_version("m", 2, tag=2.0, marker="_READY")
    wait_until(lambda: prediction(server) == 2.0, timeout=15, what="version 2 from the event")
    status = server.version("test-api")
    assert status["last_event"] is not None and status["last_reload"] >= status["last_event"]
    wait_until(lambda: metric(server, "reloader_messages_total", result="deleted") >= 1, what="messages deleted")
    assert metric(server, "reloader_reload_latency_seconds_count", model="test-api") >= 1

    # WHEN version 2's marker is removed THEN version 2 is withdrawn
    s3_client.delete_object(Bucket=bucket, Key="m/2/_READY")
    wait_until(lambda: prediction(server) == 1.0, timeout=15, what="version 2 withdrawn")


def test_topic_mode_fans_out_to_every_replica(serve, s3_client, sqs_client, sns_client, bucket):
    # GIVEN three agents on one topic, each with its own replica id, refreshing their heartbeat every second
    models = Models(s3_client, bucket)
    models.put_version("m", 1, tag=1.0)
    topic_arn = notify_topic(s3_client, sns_client, bucket)
    prefix = f"rl{bucket[-8:]}"
    reloading = {**NO_SCAN, "topic_arn": topic_arn, "queue_prefix": prefix, "heartbeat_interval": 1}
    spec = serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading=reloading))
    servers = [serve.start(spec, env={"RELOADER_REPLICA_ID": f"replica-{i}"}) for i in range(3)]
    queues = sqs_client.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    assert sorted(url.rsplit("/", 1)[1] for url in queues) == sorted(
        [f"{prefix}-test-api-replica-{i}" for i in range(3)] + [f"{prefix}-test-api-replica-{i}-dlq" for i in range(3)]
    )
    queue_url = next(u for u in queues if u.endswith("replica-0"))
    tags = sqs_client.list_queue_tags(QueueUrl=queue_url)["Tags"]
    assert tags["reloader:topic"] == topic_arn and int(tags["reloader:heartbeat"]) > 0
    assert tags["reloader:subscription"].startswith(topic_arn)
    assert tags["reloader:replica"] == "replica-0" and tags["reloader:api"] == "test-api"
    # THEN each queue accepts only SendMessage from the topic, and sends repeated failures to its DLQ
    attributes = sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    (statement,) = json.loads(attributes["Policy"])["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == attributes["QueueArn"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": topic_arn}}
    dead_letter_arn = sqs_client.get_queue_attributes(QueueUrl=queue_url + "-dlq", AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"] == dead_letter_arn
    # and its subscription delivers the S3 event itself (raw), not an SNS envelope
    subscription = sns_client.get_subscription_attributes(SubscriptionArn=tags["reloader:subscription"])
    assert subscription["Attributes"]["RawMessageDelivery"] == "true"
    assert subscription["Attributes"]["Endpoint"] == attributes["QueueArn"]
    # and the heartbeat tag keeps moving
    beat = int(tags["reloader:heartbeat"])
    wait_until(
        lambda: int(sqs_client.list_queue_tags(QueueUrl=queue_url)["Tags"]["reloader:heartbeat"]) > beat,
        timeout=10,
        what="a newer heartbeat",
    )

    # WHEN a version is uploaded THEN every replica serves it
    models.put_version("m", 2, tag=2.0)
    for server in servers:
        wait_until(lambda server=server: prediction(server) == 2.0, timeout=15, what="every replica reloads")

    # WHEN one replica is interrupted (Ctrl-C) THEN its queues and subscription are gone, the others' stay
    servers[0].stop(signal.SIGINT)
    assert "and its subscription" in servers[0].log()
    left = sorted(u.rsplit("/", 1)[1] for u in sqs_client.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []))
    assert left == sorted(f"{prefix}-test-api-replica-{i}{end}" for i in (1, 2) for end in ("", "-dlq"))
    arns = [s["SubscriptionArn"] for s in sns_client.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]]
    assert tags["reloader:subscription"] not in arns

    # WHEN the others shut down cleanly (SIGTERM) THEN their queues and subscriptions are gone too
    for server in servers[1:]:
        server.stop()
        assert "and its subscription" in server.log()
    assert sqs_client.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []) == []
    endpoints = [s["Endpoint"] for s in sns_client.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]]
    assert not [e for e in endpoints if prefix in e]


def test_replayed_duplicated_and_bad_messages_leave_the_state_of_the_listing(serve, s3_client, sqs_client, bucket):
    # GIVEN an agent on a queue, serving versions 1 and 2
    models = Models(s3_client, bucket)
    models.put_version("m", 1, tag=1.0)
    models.put_version("m", 2, tag=2.0)
    queue_url = sqs_client.create_queue(QueueName=f"replay-{bucket}")["QueueUrl"]
    server = serve.start(
        serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading={**NO_SCAN, "queue_url": queue_url}))
    )
    assert prediction(server) == 2.0

    def record(name: str, key: str, target: str = bucket) -> str:
        return s3_event_body(key, target, name)

    # WHEN a stale ObjectRemoved for version 2 is replayed, duplicated, out of order, behind junk and
    # a message for another bucket
    for body in [
        "this is not an S3 event",
        record("ObjectCreated:Put", "m/9/model.pkl", target="another-bucket"),
        record("ObjectRemoved:Delete", "m/2/model.pkl"),
        record("ObjectRemoved:Delete", "m/2/model.pkl"),
        record("ObjectCreated:Put", "m/2/model.pkl"),
        record("ObjectRemoved:Delete", "m/2/model.pkl"),
    ]:
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=body)
    # and a real change arrives behind them
    models.put_version("m", 3, tag=3.0)
    sqs_client.send_message(QueueUrl=queue_url, MessageBody=record("ObjectCreated:Put", "m/3/model.pkl"))

    # THEN the valid message is applied, version 2 (still in S3) still serves, and junk is counted
    wait_until(lambda: prediction(server) == 3.0, timeout=15, what="the valid event behind the junk")
    assert prediction(server, version=2) == 2.0
    assert server.version("test-api")["loaded"] == [1, 2, 3]
    wait_until(lambda: metric(server, "reloader_events_total", outcome="failed") == 1, what="junk counted")
    wait_until(lambda: metric(server, "reloader_events_total", outcome="ignored") == 1, what="other bucket counted")
    assert "is not an S3 event" in server.log()


def test_without_a_redrive_policy_an_unparseable_message_is_deleted_after_five_deliveries(
    serve, s3_client, sqs_client, bucket
):
    # GIVEN an agent on a queue without a redrive policy, whose messages come back after 1 s
    models = Models(s3_client, bucket)
    models.put_version("m", 1, tag=1.0)
    queue_url = sqs_client.create_queue(QueueName=f"no-redrive-{bucket}")["QueueUrl"]
    reloading = {**NO_SCAN, "queue_url": queue_url, "visibility_timeout": 1}
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading=reloading)))
    assert "has no redrive policy" in server.log()
    # WHEN a message that is not an S3 event arrives
    message_id = sqs_client.send_message(QueueUrl=queue_url, MessageBody="junk")["MessageId"]
    # THEN it is left four times, then deleted, with one line naming it
    wait_until(lambda: metric(server, "reloader_messages_total", result="deleted") == 1, timeout=30, what="deleted")
    assert metric(server, "reloader_messages_total", result="left") == 4
    deleted_lines = [line for line in server.log().splitlines() if "without a redrive policy" in line]
    assert len(deleted_lines) == 1 and message_id in deleted_lines[0]
    attributes = sqs_client.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_without_notifications_the_scan_converges_and_counts_drift(serve, s3_client, sqs_client, bucket):
    # GIVEN an agent on a queue that never receives anything (notifications are off), scanning every second
    models = Models(s3_client, bucket)
    models.put_version("m", 1, tag=1.0)
    queue_url = sqs_client.create_queue(QueueName=f"silent-{bucket}")["QueueUrl"]
    reloading = {"queue_url": queue_url, "interval": 1, "jitter": 0}
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading=reloading)))
    # WHEN a version is uploaded THEN the safety-net scan finds it, and counts it as drift
    models.put_version("m", 2, tag=2.0)
    wait_until(lambda: prediction(server) == 2.0, timeout=15, what="the scan loads version 2")
    assert metric(server, "reloader_scan_drift_total", model="test-api") >= 1


def test_in_dir_mode_a_model_only_a_scan_found_counts_as_drift(serve, s3_client, sqs_client, bucket):
    # GIVEN an agent on a silent queue serving a folder of models, scanning every second
    models = Models(s3_client, bucket)
    models.put_version("zoo/cat", 1, tag=1.0)
    queue_url = sqs_client.create_queue(QueueName=f"silent-dir-{bucket}")["QueueUrl"]
    reloading = {"queue_url": queue_url, "interval": 1, "jitter": 0}
    server = serve.start(serve.spec(api_spec({"dir": f"s3://{bucket}/zoo"}, reloading=reloading)))
    assert metric(server, "reloader_scan_drift_total", model="cat") == 0
    # WHEN a new model folder appears, announced by no event
    models.put_version("zoo/dog", 4, tag=4.0)
    # THEN the scan serves it and counts its first listing as drift
    wait_until(lambda: prediction(server, model="dog") == 4.0, timeout=15, what="the scan loads dog")
    wait_until(lambda: metric(server, "reloader_scan_drift_total", model="dog") == 1, what="drift for dog")
    assert metric(server, "reloader_scan_drift_total", model="cat") == 0
    assert metric(server, "reloader_versions_loaded", model="dog") == 1
    assert metric(server, "reloader_reload_latency_seconds_count", model="dog") == 0  # no event announced it


def test_marker_mode_waits_for_the_marker(serve, s3_client, sqs_client, bucket):
    # GIVEN an agent in marker mode
    models, server = serve_on_events(serve, s3_client, sqs_client, bucket, ready_marker="_READY")
    lists_before = metric(server, "reloader_s3_requests_total", operation="ListObjectsV2")
    deleted_before = metric(server, "reloader_messages_total", result="deleted")
    # WHEN two of version 2's three files arrive, without the marker
    s3_client.put_object(Bucket=bucket, Key="m/2/MANIFEST", Body=b"model.pkl part.bin")
    models.put_version("m", 2, tag=2.0)

    # THEN the agent received and acknowledged their events, and does not load it
    wait_until(
        lambda: metric(server, "reloader_messages_total", result="deleted") >= deleted_before + 2,
        timeout=15,
        what="events",
    )
    assert prediction(server) == 1.0
    assert "2" not in server.version("test-api")["versions"]
    # and they cost no listing: the files of a version it does not know cannot matter before its marker
    assert metric(server, "reloader_s3_requests_total", operation="ListObjectsV2") == lists_before
    # WHEN the third file and then the marker arrive THEN it loads, complete
    s3_client.put_object(Bucket=bucket, Key="m/2/part.bin", Body=b"x" * 1000)
    s3_client.put_object(Bucket=bucket, Key="m/2/_READY", Body=b"")
    wait_until(lambda: prediction(server) == 2.0, timeout=15, what="version 2 after its marker")
    assert server.post({}).json()["missing"] == []
    # and the marker's event cost one listing; S3 does not order notifications, so part.bin's event
    # may arrive after the marker's, when version 2 is known, and cost one more
    assert metric(server, "reloader_s3_requests_total", operation="ListObjectsV2") - lists_before in (1, 2)


def test_without_a_marker_a_version_loads_once_its_listing_settles(serve, s3_client, sqs_client, bucket):
    import time

    # GIVEN an agent on events, with no ready marker and a settle window of 1 s
    models, server = serve_on_events(serve, s3_client, sqs_client, bucket, settle=1.0)
    # WHEN version 2 is uploaded
    models.put_version("m", 2, tag=2.0)
    uploaded = time.monotonic()
    # THEN it is served, and not before its listing stayed unchanged for the settle window
    wait_until(lambda: prediction(server) == 2.0, timeout=15, what="version 2 after settling")
    assert time.monotonic() - uploaded >= 1.0
    # and its reload latency counts from the event, settle window included, though a timer loaded it
    wait_until(lambda: metric(server, "reloader_reload_latency_seconds_count", model="test-api") == 1, what="latency")
    assert metric(server, "reloader_reload_latency_seconds_sum", model="test-api") >= 1.0
    # and the event's message was deleted once the version was seen and its settle timer set
    assert metric(server, "reloader_messages_total", result="deleted") >= 1
    assert metric(server, "reloader_messages_total", result="left") == 0


def test_topic_mode_serves_while_its_queue_cannot_be_made_and_subscribes_later(
    serve, s3_client, sqs_client, sns_client, bucket
):
    # GIVEN an agent pointed at a topic that does not exist yet
    models = Models(s3_client, bucket)
    models.put_version("m", 1, tag=1.0)
    topic_arn = f"arn:aws:sns:us-east-1:000000000000:models-{bucket}"
    prefix = f"late{bucket[-8:]}"
    reloading = {**NO_SCAN, "topic_arn": topic_arn, "queue_prefix": prefix, "replica_id": "r1"}
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading=reloading)))
    # THEN it serves anyway, and says why it has no queue
    assert prediction(server) == 1.0
    assert "cannot create this replica's queue yet" in server.log()
    # WHEN the topic appears THEN the agent subscribes in the background and events flow
    assert notify_topic(s3_client, sns_client, bucket) == topic_arn
    wait_until(lambda: "created this replica's queue after all" in server.log(), timeout=60, what="late subscription")
    models.put_version("m", 2, tag=2.0)
    wait_until(lambda: prediction(server) == 2.0, timeout=15, what="version 2 from the event")
    server.stop()
    assert sqs_client.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []) == []


def test_topic_mode_refuses_a_queue_that_belongs_to_another_replica(serve, s3_client, sqs_client, sns_client, bucket):
    # GIVEN a replica's queue on the topic (named as this replica's would be: a collision)
    models = Models(s3_client, bucket)
    models.put_version("m", 1, tag=1.0)
    topic_arn = notify_topic(s3_client, sns_client, bucket)
    prefix = f"own{bucket[-8:]}"
    name = f"{prefix}-test-api-r1"
    owned = sqs_client.create_queue(QueueName=name, tags={"reloader:replica": "someone-else"})["QueueUrl"]
    # WHEN an agent whose queue would have that name starts, and stops
    reloading = {**NO_SCAN, "topic_arn": topic_arn, "queue_prefix": prefix, "replica_id": "r1"}
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading=reloading)))
    # THEN it serves, says why it has no queue, and leaves the other replica's queue alone
    assert prediction(server) == 1.0
    wait_until(lambda: "belongs to another replica" in server.log(), what="the refusal logged")
    server.stop()
    assert sqs_client.list_queue_tags(QueueUrl=owned)["Tags"]["reloader:replica"] == "someone-else"
    endpoints = [s["Endpoint"] for s in sns_client.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]]
    assert not [e for e in endpoints if e.endswith(f":{name}")]
    sqs_client.delete_queue(QueueUrl=owned)


def test_a_temporary_failure_leaves_the_message_which_comes_back_and_applies(serve, s3_client, sqs_client, bucket):
    # GIVEN an agent on a queue that only retries a failed version by itself after an hour
    _, server = serve_on_events(
        serve, s3_client, sqs_client, bucket, ready_marker="_READY", retry_backoff=3600, retry_backoff_max=3600
    )
    assert prediction(server) == 1.0
    # WHEN version 2 arrives archived (GLACIER: listed, but unreadable until restored)
    s3_client.put_object(Bucket=bucket, Key="m/2/model.pkl", Body=tagged_model(2.0), StorageClass="GLACIER")
    s3_client.put_object(Bucket=bucket, Key="m/2/_READY", Body=b"")
    # THEN its download fails temporarily, version 1 keeps serving, and the message is left, not deleted
    wait_until(lambda: metric(server, "reloader_messages_total", result="left") >= 1, timeout=15, what="left")
    assert metric(server, "reloader_load_failures_total", model="test-api") >= 1
    assert prediction(server) == 1.0
    deleted = metric(server, "reloader_messages_total", result="deleted")
    # WHEN the object is restored (which sends no ObjectCreated event)
    s3_client.restore_object(Bucket=bucket, Key="m/2/model.pkl", RestoreRequest={"Days": 1})
    # THEN the message, visible again, gets version 2 served, and is deleted
    wait_until(lambda: prediction(server) == 2.0, timeout=30, what="version 2 from the redelivered message")
    wait_until(lambda: metric(server, "reloader_messages_total", result="deleted") > deleted, what="deleted")
    assert metric(server, "reloader_versions_loaded", model="test-api") == 2
