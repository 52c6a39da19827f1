"""The janitor's core against LocalStack SQS and SNS: only a stale replica queue of this prefix and
topic goes, unsubscribed first, with its DLQ; everything else stays; two sweeps at once are fine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agent.domain import fleet
from functions.janitor.core import Janitor, Sweep
from functions.janitor.settings import JanitorSettings
from tests.functions.support import NOW, TTL, Fleet, fresh, stale

pytestmark = pytest.mark.localstack


def janitor(replicas: Fleet, sqs_client: Any, sns_client: Any) -> Janitor:
    settings = JanitorSettings.load(
        {}, queue_prefix=replicas.prefix, topic_arn=replicas.topic_arn, heartbeat_ttl_seconds=TTL
    )
    return Janitor(sqs_client, sns_client, settings, clock=lambda: NOW)


def test_only_the_stale_queue_is_unsubscribed_and_deleted(replicas: Fleet, sqs_client: Any, sns_client: Any) -> None:
    # GIVEN a dead replica's queue, a live replica's queue, the stack's own fixed queue under the
    # prefix, and a queue with a stale heartbeat outside the prefix
    dead = replicas.replica_queue("iris", "pod-a", heartbeat=stale())
    live = replicas.replica_queue("iris", "pod-b", heartbeat=fresh())
    fixed = replicas.plain_queue(f"{replicas.prefix}--fixed-1")
    outsider = replicas.plain_queue(
        f"other{replicas.prefix[2:]}-iris-pod-c",
        {fleet.HEARTBEAT_TAG: str(int(stale())), fleet.TOPIC_TAG: replicas.topic_arn},
    )
    assert replicas.subscribed_endpoints() == {dead, live}

    # WHEN the janitor sweeps
    sweep = janitor(replicas, sqs_client, sns_client).sweep()

    # THEN the dead replica's queue and its DLQ are gone, and its subscription with them
    assert sorted(sweep.deleted) == [dead, dead + fleet.DLQ_SUFFIX]
    assert sweep.failed == []
    assert not replicas.exists(dead) and not replicas.exists(dead + fleet.DLQ_SUFFIX)
    assert replicas.subscribed_endpoints() == {live}
    # AND everything else is still there
    assert {live, live + fleet.DLQ_SUFFIX, fixed} <= replicas.names()
    assert replicas.exists(outsider)
    assert sweep.checked == 3  # dead, live and fixed; the DLQs are judged with their main queues


def test_without_a_subscription_tag_it_finds_the_subscription_by_endpoint(
    replicas: Fleet, sqs_client: Any, sns_client: Any
) -> None:
    # GIVEN a dead replica that died before tagging its subscription
    dead = replicas.replica_queue("iris", "pod-a", heartbeat=stale(), tag_subscription=False)
    # WHEN the janitor sweeps
    janitor(replicas, sqs_client, sns_client).sweep()
    # THEN it was unsubscribed all the same
    assert replicas.subscribed_endpoints() == set()
    assert not replicas.exists(dead)


def test_a_queue_of_another_topic_or_with_a_bad_heartbeat_is_kept(
    replicas: Fleet, sqs_client: Any, sns_client: Any
) -> None:
    # GIVEN prefix queues that are not provably this topic's dead replicas
    other_topic = replicas.plain_queue(
        f"{replicas.prefix}-iris-pod-x",
        {fleet.HEARTBEAT_TAG: str(int(stale())), fleet.TOPIC_TAG: replicas.topic_arn + "-x"},
    )
    unreadable = replicas.plain_queue(
        f"{replicas.prefix}-iris-pod-y", {fleet.HEARTBEAT_TAG: "soon", fleet.TOPIC_TAG: replicas.topic_arn}
    )
    untagged = replicas.plain_queue(f"{replicas.prefix}-iris-pod-w", {fleet.HEARTBEAT_TAG: str(int(stale()))})
    # WHEN the janitor sweeps THEN all stay
    sweep = janitor(replicas, sqs_client, sns_client).sweep()
    assert sweep.deleted == []
    assert {other_topic, unreadable, untagged} <= replicas.names()


def test_an_orphaned_dlq_with_a_stale_heartbeat_goes_too(replicas: Fleet, sqs_client: Any, sns_client: Any) -> None:
    # GIVEN a DLQ whose main queue is gone already (say, a sweep interrupted between the two deletes)
    orphan = replicas.plain_queue(
        f"{replicas.prefix}-iris-pod-z{fleet.DLQ_SUFFIX}",
        {fleet.HEARTBEAT_TAG: str(int(stale())), fleet.TOPIC_TAG: replicas.topic_arn},
    )
    # WHEN the janitor sweeps THEN the orphan is deleted on its own heartbeat
    assert janitor(replicas, sqs_client, sns_client).sweep().deleted == [orphan]


def test_two_sweeps_at_once_delete_each_queue_once_and_neither_fails(
    replicas: Fleet, sqs_client: Any, sns_client: Any
) -> None:
    # GIVEN three dead replicas and one live one
    dead = {replicas.replica_queue("iris", f"pod-{n}", heartbeat=stale()) for n in range(3)}
    live = replicas.replica_queue("iris", "pod-live", heartbeat=fresh())
    # WHEN two janitors sweep at the same time
    with ThreadPoolExecutor(2) as pool:
        sweeps: list[Sweep] = list(pool.map(lambda _: janitor(replicas, sqs_client, sns_client).sweep(), range(2)))
    # THEN neither failed, the dead queues are gone, and each deletion is reported once at most per queue
    assert all(sweep.failed == [] for sweep in sweeps)
    assert replicas.names() == {live, live + fleet.DLQ_SUFFIX}
    reported = [name for sweep in sweeps for name in sweep.deleted]
    assert len(reported) == len(set(reported))
    assert {name for name in reported if not name.endswith(fleet.DLQ_SUFFIX)} == dead


def test_a_second_sweep_finds_nothing_to_do(replicas: Fleet, sqs_client: Any, sns_client: Any) -> None:
    replicas.replica_queue("iris", "pod-a", heartbeat=stale())
    first = janitor(replicas, sqs_client, sns_client).sweep()
    second = janitor(replicas, sqs_client, sns_client).sweep()
    assert len(first.deleted) == 2
    assert (second.checked, second.deleted, second.failed) == (0, [], [])
