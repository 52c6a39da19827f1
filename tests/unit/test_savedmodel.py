"""The SavedModel completeness check: a table of version folders."""

from __future__ import annotations

import pytest

from agent.domain.savedmodel import savedmodel_check, savedmodel_incomplete
from agent.domain.versions import ObjectInfo, discover

GRAPH = "saved_model.pb"
INDEX = "variables/variables.index"
MARKER = "_READY"
HINT = ("reloading.ready_marker", "compute.inf")  # what /models tells a graph-only version's owner to set
NO_MARKER_YET = ("waiting for the ready marker",)


def shard(index: int, count: int) -> str:
    return f"variables/variables.data-{index:05d}-of-{count:05d}"


def objs(*keys: str) -> list[ObjectInfo]:
    # a key ending in "/" is a console's zero-byte folder placeholder
    return [ObjectInfo(key, 0 if key.endswith("/") else 1, f"etag-{key}") for key in keys]


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        pytest.param((GRAPH, INDEX, shard(0, 1)), None, id="one-shard"),
        pytest.param(("saved_model.pbtxt", INDEX, shard(0, 1)), None, id="text-graph"),
        pytest.param(
            (GRAPH, INDEX, shard(0, 2), shard(1, 2), "assets/vocab.txt", "fingerprint.pb"), None, id="two-shards"
        ),
        pytest.param((INDEX, shard(0, 1)), "no saved_model.pb", id="no-graph"),
        pytest.param(("model/saved_model.pb", INDEX, shard(0, 1)), "no saved_model.pb", id="graph-not-at-the-top"),
        pytest.param((GRAPH, shard(0, 1)), "variables.index is missing", id="no-index"),
        pytest.param((GRAPH, INDEX), "no variables/variables.data", id="no-shard"),
        pytest.param((GRAPH, INDEX, shard(0, 3), shard(2, 3)), shard(1, 3), id="middle-shard-missing"),
        pytest.param((GRAPH, INDEX, shard(1, 2)), shard(0, 2), id="first-shard-missing"),
        pytest.param((GRAPH, INDEX, shard(0, 1), shard(0, 2), shard(1, 2)), "disagree", id="two-shard-counts"),
        pytest.param((GRAPH, INDEX, shard(0, 1), shard(3, 1)), "beyond", id="index-beyond-count"),
        pytest.param((GRAPH, INDEX, *(shard(i, 9) for i in (0, 8))), "and 4 more", id="many-missing-abbreviated"),
    ],
)
def test_savedmodel_completeness(keys, problem):
    reason = savedmodel_incomplete(objs(*keys))
    if problem is None:
        assert reason is None
    else:
        assert reason is not None and problem in reason


def test_discovery_holds_back_incomplete_savedmodel_versions():
    # GIVEN version 1 whole and version 2 still missing a shard
    keys = [f"1/{key}" for key in (GRAPH, INDEX, shard(0, 1))] + [f"2/{key}" for key in (GRAPH, INDEX, shard(1, 2))]
    # WHEN discovered with the SavedModel check
    listing = discover(objs(*keys), completeness=savedmodel_incomplete)
    # THEN only version 1 is loadable, and version 2 says what it waits for
    assert sorted(listing.loadable) == [1]
    assert shard(0, 2) in (listing.versions[2].incomplete or "")


@pytest.mark.parametrize(
    ("keys", "ready_marker", "inferentia", "problem"),
    [
        pytest.param((GRAPH,), None, False, HINT, id="graph-only-waits-with-the-hint"),
        pytest.param((GRAPH, "assets/vocab.txt"), None, False, HINT, id="graph-and-assets-wait-with-the-hint"),
        pytest.param((GRAPH, MARKER), MARKER, False, None, id="graph-only-with-marker"),
        pytest.param(("saved_model.pbtxt", MARKER), MARKER, False, None, id="text-graph-only-with-marker"),
        pytest.param((GRAPH,), MARKER, False, NO_MARKER_YET, id="graph-only-marker-not-yet"),
        pytest.param((GRAPH,), None, True, None, id="graph-only-with-compute-inf"),
        pytest.param((GRAPH,), MARKER, True, NO_MARKER_YET, id="compute-inf-still-waits-for-marker"),
        pytest.param((GRAPH, "variables/", MARKER), MARKER, False, None, id="variables-folder-placeholder-with-marker"),
        pytest.param(
            (GRAPH, INDEX, shard(0, 2), MARKER), MARKER, False, (shard(1, 2),), id="partial-shards-with-marker-refused"
        ),
        pytest.param((GRAPH, INDEX, shard(1, 2)), None, True, (shard(0, 2),), id="partial-shards-with-compute-inf"),
        pytest.param((GRAPH, INDEX, MARKER), MARKER, False, ("no variables/variables.data",), id="index-only-marked"),
        pytest.param((GRAPH, shard(0, 1)), None, True, ("variables.index is missing",), id="shard-only-compute-inf"),
        pytest.param((INDEX, shard(0, 1), MARKER), MARKER, False, ("no saved_model.pb",), id="no-graph-with-marker"),
        pytest.param((GRAPH, INDEX, shard(0, 1)), None, False, None, id="cpu-layout-needs-no-signal"),
    ],
)
def test_a_graph_only_version_is_complete_when_the_user_says_so(keys, ready_marker, inferentia, problem):
    # GIVEN version 1's keys, the API's ready marker setting and its compute.inf
    objects = objs(*(f"1/{key}" for key in keys))
    # WHEN discovered with the TensorFlow handler's check
    listing = discover(objects, ready_marker, savedmodel_check(inferentia=inferentia))
    # THEN it is loadable, or waits saying why (and, graph-only, how to get it loaded)
    reason = listing.versions[1].incomplete
    if problem is None:
        assert reason is None and sorted(listing.loadable) == [1]
    else:
        assert reason is not None and all(words in reason for words in problem), reason
