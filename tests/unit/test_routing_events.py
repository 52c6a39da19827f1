"""From object events to the reconciles they ask for, and how queued requests merge."""

from __future__ import annotations

import pytest

from agent.domain.events import ObjectEvent
from agent.domain.locations import S3Location
from agent.domain.requests import Request, merge, route
from agent.domain.routing import ModelSet, ModelSource
from agent.domain.versions import ObjectInfo, event_can_matter

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
