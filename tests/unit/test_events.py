"""Parsing SQS message bodies into S3 object events: every delivery path, from JSON fixtures."""

from __future__ import annotations

import json

import pytest

from agent.domain.events import BadMessage, ObjectEvent, parse_message
from tests.support import event_fixture


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("s3_object_created.json", [("capture-bkt", "models/iris/1/my model+x.pkl", False)], id="direct"),
        pytest.param("s3_object_removed.json", [("capture-bkt", "models/iris/1/my model+x.pkl", True)], id="removed"),
        pytest.param(
            "s3_aws_plus_space.json", [("prod-models", "models/my model/3/weights v2.bin", False)], id="plus-is-space"
        ),
        pytest.param(
            "sns_notification_s3.json", [("capture-bkt", "models/iris/1/my model+x.pkl", False)], id="sns-wrapped"
        ),
        pytest.param(
            "eventbridge_object_created.json",
            [("prod-models", "models/iris/4/model.pkl", False)],
            id="eventbridge-created",
        ),
        pytest.param(
            "eventbridge_object_deleted.json",
            [("prod-models", "models/iris/4/model.pkl", True)],
            id="eventbridge-deleted",
        ),
        pytest.param("s3_test_event.json", [], id="test-event"),
    ],
)
def test_parse(name, expected):
    events = parse_message(event_fixture(name))
    assert [(e.bucket, e.key, e.removed) for e in events] == expected
    assert all(isinstance(e, ObjectEvent) and e.time > 1.7e9 for e in events)


def test_eventbridge_inside_sns_is_unwrapped():
    wrapped = json.loads(event_fixture("sns_notification_s3.json"))
    wrapped["Message"] = event_fixture("eventbridge_object_created.json")
    assert [e.key for e in parse_message(json.dumps(wrapped))] == ["models/iris/4/model.pkl"]


def test_other_s3_event_kinds_are_skipped():
    data = json.loads(event_fixture("s3_object_created.json"))
    data["Records"][0]["eventName"] = "ObjectRestore:Completed"
    assert parse_message(json.dumps(data)) == ()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param("not json", "invalid JSON", id="not-json"),
        pytest.param("[1, 2]", "JSON object", id="a-list"),
        pytest.param('{"hello": "world"}', "found keys ['hello']", id="unknown-shape"),
        pytest.param('{"Records": [{"eventSource": "aws:s3"}]}', "malformed", id="broken-record"),
        pytest.param(
            '{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete", "s3": {}}]}',
            "invalid field",
            id="missing-fields",
        ),
        pytest.param(
            '{"Type": "Notification", "Message": "x", "MessageId": "1", "TopicArn": "t", '
            '"Timestamp": "2026-01-01T00:00:00Z", "SignatureVersion": "1", "Signature": "s", '
            '"UnsubscribeURL": "http://x"}',
            "inside the SNS notification",
            id="sns-with-junk",
        ),
    ],
)
def test_bad_messages_say_what_was_expected(body, words):
    with pytest.raises(BadMessage, match="expected") as raised:
        parse_message(body)
    assert words in str(raised.value)


@pytest.mark.parametrize(
    ("name", "etag", "size"),
    [
        pytest.param("s3_object_created.json", "900150983cd24fb0d6963f7d28e17f72", 3, id="direct"),
        pytest.param("sns_notification_s3.json", "900150983cd24fb0d6963f7d28e17f72", 3, id="sns-wrapped"),
        pytest.param("eventbridge_object_created.json", "b1946ac92492d2347c6235b4d2611184", 5, id="eventbridge"),
        pytest.param("s3_object_removed.json", "", -1, id="removed-has-neither"),
    ],
)
def test_a_created_objects_etag_and_size_come_with_its_event(name, etag, size):
    (event,) = parse_message(event_fixture(name))
    assert (event.etag, event.size) == (etag, size)
