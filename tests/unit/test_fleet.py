"""Per-replica queue names: unique per replica, within SQS's limit, always under the prefix."""

from __future__ import annotations

import re

import pytest

from agent.domain import fleet

POD = "model-server-deployment-with-a-rather-long-name-7f9c8d6b5-"


@pytest.mark.parametrize(
    ("prefix", "api", "replica", "expected"),
    [
        pytest.param("reloader", "iris", "pod-1", "reloader-iris-pod-1", id="short-names-unchanged"),
        pytest.param("reloader", "iris", "pod-1.ns.svc", "reloader-iris-pod-1-ns-svc", id="dots-become-dashes"),
    ],
)
def test_short_names_read_as_given(prefix: str, api: str, replica: str, expected: str) -> None:
    assert fleet.queue_name(prefix, api, replica) == expected


def test_long_replica_ids_that_differ_at_the_end_get_different_queues() -> None:
    # GIVEN two pods of one deployment whose names differ only in their last characters
    names = {fleet.queue_name("reloader", "text-classifier", POD + suffix) for suffix in ("x2k9p", "q7w3z")}
    # THEN each gets its own queue
    assert len(names) == 2


@pytest.mark.parametrize("length", [60, 77, 100, 300])
def test_a_shortened_name_fits_with_its_dead_letter_suffix_and_keeps_the_prefix(length: int) -> None:
    replica = ("r" * length)[:length]
    name = fleet.queue_name("team-models", "api", replica)
    assert len(name + fleet.DLQ_SUFFIX) <= fleet.MAX_QUEUE_NAME
    assert name.startswith("team-models-")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name)


def test_a_shortened_name_is_stable_and_readable() -> None:
    replica = POD + "x2k9p"
    name = fleet.queue_name("reloader", "text-classifier", replica)
    assert name == fleet.queue_name("reloader", "text-classifier", replica)  # a restarted pod finds its queue
    assert name.startswith("reloader-text-classifier-model-server-deployment")
    assert re.search(r"-[0-9a-f]{10}$", name)


def test_the_longest_prefix_allowed_still_leads_a_shortened_name() -> None:
    prefix = "p" * fleet.MAX_PREFIX
    name = fleet.queue_name(prefix, "api", "r" * 100)
    assert name.startswith(prefix + "-") and len(name + fleet.DLQ_SUFFIX) <= fleet.MAX_QUEUE_NAME


def test_a_prefix_too_long_to_lead_the_name_is_refused() -> None:
    with pytest.raises(ValueError, match="queue prefix"):
        fleet.queue_name("p" * (fleet.MAX_PREFIX + 1), "api", "r" * 100)
