"""From object events to the reconciles they ask for, and how queued requests merge."""

from __future__ import annotations

import pytest

from agent.domain.events import ObjectEvent
from agent.domain.locations import S3Location
from agent.domain.requests import Request, merge, route
from agent.domain.routing import ModelSet, ModelSource
from agent.domain.versions import ObjectInfo, early_downloads, event_can_matter

MODELS = ModelSet(fixed=(ModelSource("iris", S3Location("b", "models/iris")),))


def test_a_burst_for_one_model_asks_for_one_reconcile_from_its_earliest_event():
    events = (
        ObjectEvent("b", "models/iris/2/a.bin", False, 20.0),
        ObjectEvent("b", "models/iris/2/_READY", False, 10.0),
        ObjectEvent("b", "models/other/1/x", False, 5.0),
        ObjectEvent("elsewhere", "models/iris/2/a.bin", True, 1.0),
    )
    routed = route(events, MODELS)
    assert routed.models == {"iris": Request(event_time=10.0, keys=frozenset({"2/a.bin", "2/_READY"}))}
    assert routed.ignored == 2


@pytest.mark.parametrize(
    ("key", "known", "matters"),
    [
        pytest.param("3/model.pkl", set(), False, id="file-of-an-unknown-version"),
        pytest.param("3/_READY", set(), True, id="its-marker"),
        pytest.param("3/model.pkl", {3}, True, id="file-of-a-loaded-or-failed-version"),
        pytest.param("model.pkl", {1}, True, id="non-versioned-loaded"),
        pytest.param("model.pkl", set(), False, id="non-versioned-unknown"),
        pytest.param("_READY", set(), True, id="non-versioned-marker"),
    ],
)
def test_in_marker_mode_only_keys_that_can_change_what_serves_are_looked_at(key, known, matters):
    assert event_can_matter(key, "_READY", known) is matters
    assert event_can_matter(key, None, known) is True  # without a marker every change matters


def test_locate_gives_the_key_relative_to_the_model():
    assert MODELS.locate("b", "models/iris/2/a.bin") == ("iris", "2/a.bin")
    assert ModelSet(directory=S3Location("b", "zoo")).locate("b", "zoo/cat/1/x") == ("cat", "1/x")
    assert ModelSet(fixed=(ModelSource("all", S3Location("b", "")),)).locate("b", "1/x") == ("all", "1/x")


def test_merged_requests_relist_unless_all_brought_a_listing():
    listing = [ObjectInfo("1/m", 1, "e")]
    scan = Request(objects=listing, from_scan=True)
    event = Request(event_time=5.0)
    assert merge([scan, scan]).objects == listing and merge([scan]).from_scan
    merged = merge([scan, event, Request(event_time=3.0)])
    assert merged.objects is None and merged.event_time == 3.0 and not merged.from_scan
    # keys are unioned only while every request named its keys; one that did not means "look"
    keyed = merge([Request(keys=frozenset({"1/a"})), Request(keys=frozenset({"2/b"}))])
    assert keyed.keys == frozenset({"1/a", "2/b"})
    assert merge([Request(keys=frozenset({"1/a"})), event]).keys is None


def test_created_objects_with_an_etag_travel_with_the_request_and_merge():
    # GIVEN a created object with its ETag and size, one without (an old event shape), and a removal
    events = (
        ObjectEvent("b", "models/iris/2/a.bin", False, 20.0, etag="e1", size=7),
        ObjectEvent("b", "models/iris/2/b.bin", False, 21.0),
        ObjectEvent("b", "models/iris/2/c.bin", True, 22.0, etag="e3", size=1),
    )
    # WHEN routed THEN only the first can be fetched early
    (request,) = route(events, MODELS).models.values()
    assert request.landed == (ObjectInfo("2/a.bin", 7, "e1"),)
    # AND merged requests keep every landed object, in order
    later = Request(event_time=30.0, keys=frozenset({"2/d.bin"}), landed=(ObjectInfo("2/d.bin", 1, "e4"),))
    assert merge([request, later]).landed == (ObjectInfo("2/a.bin", 7, "e1"), ObjectInfo("2/d.bin", 1, "e4"))


@pytest.mark.parametrize(
    ("key", "marker", "known", "early"),
    [
        pytest.param("3/model.pkl", "_READY", set(), True, id="file-of-a-version-its-marker-has-not-completed"),
        pytest.param("3/_READY", "_READY", set(), False, id="the-marker-itself-is-a-look"),
        pytest.param("3/model.pkl", "_READY", {3}, False, id="a-known-version-is-looked-at-instead"),
        pytest.param("3/model.pkl", None, set(), False, id="without-a-marker-every-event-is-a-look"),
        pytest.param("3/../x", "_READY", set(), False, id="an-unsafe-key-is-never-written"),
    ],
)
def test_which_landed_files_are_fetched_before_their_version_is_complete(key, marker, known, early):
    landed = [ObjectInfo(key, 10, "etag")]
    assert early_downloads(landed, marker, known) == (landed if early else [])
