"""The janitor's verdict on one queue's tags: a pure function, as a table."""

from __future__ import annotations

import pytest

from functions.janitor.core import Verdict, judge
from functions.janitor.names import HEARTBEAT_TAG, TOPIC_TAG

TOPIC = "arn:aws:sns:us-east-1:000000000000:models"
NOW = 10_000.0
TTL = 3600


@pytest.mark.parametrize(
    ("tags", "verdict"),
    [
        pytest.param({HEARTBEAT_TAG: "1000", TOPIC_TAG: TOPIC}, Verdict.STALE, id="stale"),
        pytest.param({HEARTBEAT_TAG: "1000"}, Verdict.NO_TOPIC, id="stale-without-topic-tag-is-not-ours"),
        pytest.param({HEARTBEAT_TAG: "6400", TOPIC_TAG: TOPIC}, Verdict.FRESH, id="exactly-ttl-old-is-still-fresh"),
        pytest.param({HEARTBEAT_TAG: "6399.5", TOPIC_TAG: TOPIC}, Verdict.STALE, id="just-past-ttl"),
        pytest.param({HEARTBEAT_TAG: "9990", TOPIC_TAG: TOPIC}, Verdict.FRESH, id="fresh"),
        pytest.param({HEARTBEAT_TAG: "20000", TOPIC_TAG: TOPIC}, Verdict.FRESH, id="from-the-future"),
        pytest.param({}, Verdict.NO_TOPIC, id="no-tags-fixed-queue"),
        pytest.param({TOPIC_TAG: TOPIC}, Verdict.NO_HEARTBEAT, id="no-heartbeat"),
        pytest.param({HEARTBEAT_TAG: "yesterday", TOPIC_TAG: TOPIC}, Verdict.BAD_HEARTBEAT, id="not-a-number"),
        pytest.param({HEARTBEAT_TAG: "nan", TOPIC_TAG: TOPIC}, Verdict.BAD_HEARTBEAT, id="nan"),
        pytest.param({HEARTBEAT_TAG: "-inf", TOPIC_TAG: TOPIC}, Verdict.BAD_HEARTBEAT, id="minus-infinity"),
        pytest.param({HEARTBEAT_TAG: "1000", TOPIC_TAG: TOPIC + "-other"}, Verdict.OTHER_TOPIC, id="other-topic"),
    ],
)
def test_judge(tags: dict[str, str], verdict: Verdict) -> None:
    assert judge(tags, now=NOW, ttl_seconds=TTL, topic_arn=TOPIC) is verdict
