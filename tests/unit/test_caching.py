"""The caching rules as tables (agent.domain.caching): LRU victims, "latest", eager refreshes."""

from __future__ import annotations

import pytest

from agent.domain.caching import eager_versions, latest_candidates, latest_or_failed, resolve, victims
from agent.domain.index import Failure, ModelState, VersionEntry
from agent.domain.versions import ObjectInfo, VersionListing

NOW = 1_000_000.0


def listing(number: int, fp: str = "fp", incomplete: str | None = None) -> VersionListing:
    return VersionListing(number, (ObjectInfo("m", 1, "e", NOW),), f"{fp}{number}", f"{number}/", incomplete)


def state(*versions: VersionListing, failed: dict[int, str] | None = None, settling: frozenset[int] = frozenset()):
    """Versions in S3; `failed`: version -> the fingerprint whose load failed."""
    entries = {}
    for item in versions:
        fingerprint = (failed or {}).get(item.version)
        failure = Failure(fingerprint, "boom", 1, NOW + 10) if fingerprint else None
        entries[item.version] = VersionEntry(item, NOW, failure)
    return ModelState(entries, listed=True, settling=settling)


# -- victims(): least recently used first, never the kept ones ------------------------------------


@pytest.mark.parametrize(
    ("used", "resident", "keep", "capacity", "expected"),
    [
        pytest.param({"a": 1, "b": 2}, ["a", "b"], set(), 2, [], id="fits"),
        pytest.param({"a": 1, "b": 2, "c": 3}, ["a", "b", "c"], {"c"}, 2, ["a"], id="oldest-goes"),
        pytest.param({"a": 5, "b": 2, "c": 3}, ["a", "b", "c"], {"c"}, 2, ["b"], id="recent-use-protects"),
        pytest.param({"a": 1, "b": 2, "c": 3}, ["a", "b", "c"], {"c"}, 1, ["a", "b"], id="several"),
        pytest.param({"b": 2, "c": 3}, ["a", "b", "c"], {"c"}, 2, ["a"], id="never-used-is-oldest"),
        pytest.param({"a": 1, "b": 2, "c": 3}, ["a", "b", "c"], {"a", "c"}, 2, ["b"], id="loading-is-kept"),
        pytest.param({"a": 1, "b": 2}, ["a", "b"], {"a", "b"}, 1, [], id="all-kept-overshoot"),
    ],
)
def test_victims(used, resident, keep, capacity, expected):
    assert victims(used, resident, keep, capacity) == expected


# -- latest ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "candidates", "tried"),
    [
        pytest.param(state(listing(1), listing(2)), (2, 1), 2, id="highest-first"),
        pytest.param(state(listing(1), listing(2), failed={2: "fp2"}), (1,), 1, id="failed-new-keeps-previous"),
        pytest.param(state(listing(1), listing(2), failed={2: "old2"}), (2, 1), 2, id="failed-other-content-retried"),
        pytest.param(state(listing(1), listing(2, incomplete="no marker")), (1,), 1, id="incomplete-skipped"),
        pytest.param(state(listing(1), listing(2), settling=frozenset({2})), (1,), 1, id="settling-skipped"),
        pytest.param(state(listing(1), failed={1: "fp1"}), (), 1, id="all-failed-tries-highest-for-its-error"),
        pytest.param(state(), (), None, id="nothing"),
    ],
)
def test_latest_candidates(index, candidates, tried):
    assert latest_candidates(index) == candidates
    assert latest_or_failed(index) == tried


@pytest.mark.parametrize(
    ("candidates", "loading", "in_memory", "expected"),
    [
        pytest.param((2, 1), set(), {1}, 2, id="best-not-loading-is-cold-loaded"),
        pytest.param((2, 1), {2}, {1}, 1, id="new-version-loading-old-serves"),
        pytest.param((2, 1), {2}, {2, 1}, 2, id="in-place-reload-of-best-serves-it"),
        pytest.param((2, 1), {2}, set(), 2, id="loading-nothing-cached-waits-for-it"),
        pytest.param((), set(), set(), None, id="none"),
    ],
)
def test_resolve(candidates, loading, in_memory, expected):
    assert resolve(candidates, loading, in_memory) == expected


# -- eager refreshes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "loaded", "expected"),
    [
        pytest.param(state(listing(1), listing(2)), {}, set(), id="nothing-cached-nothing-eager"),
        pytest.param(state(listing(1, fp="new")), {1: "fp1"}, {1}, id="in-place-update-of-cached"),
        pytest.param(state(listing(1), listing(2)), {1: "fp1"}, {1, 2}, id="new-latest-of-cached-latest"),
        pytest.param(state(listing(1), listing(2), listing(3)), {1: "fp1"}, {1}, id="cached-an-old-version-only"),
        pytest.param(
            state(listing(1), listing(2), failed={2: "fp2"}), {1: "fp1"}, {1}, id="failed-new-version-not-retried"
        ),
    ],
)
def test_eager_versions(index, loaded, expected):
    assert eager_versions(index, loaded) == expected
