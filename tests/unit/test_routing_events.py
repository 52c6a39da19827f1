"""From object events to the reconciles they ask for, and how queued requests merge."""

from __future__ import annotations

from agent.domain.events import ObjectEvent
from agent.domain.locations import S3Location
from agent.domain.routing import ModelSet, ModelSource
from agent.domain.versions import ObjectInfo
from agent.engine.consumer import route
from agent.engine.workers import Request, merge

MODELS = ModelSet(fixed=(ModelSource("iris", S3Location("b", "models/iris")),))


def test_a_burst_for_one_model_asks_for_one_reconcile_from_its_earliest_event():
    events = (
        ObjectEvent("b", "models/iris/2/a.bin", False, 20.0),
        ObjectEvent("b", "models/iris/2/_READY", False, 10.0),
        ObjectEvent("b", "models/other/1/x", False, 5.0),
        ObjectEvent("elsewhere", "models/iris/2/a.bin", True, 1.0),
    )
    routed = route(events, MODELS)
    assert routed.models == {"iris": 10.0}
    assert routed.ignored == 2


def test_merged_requests_relist_unless_all_brought_a_listing():
    listing = [ObjectInfo("1/m", 1, "e")]
    scan = Request(objects=listing, from_scan=True)
    event = Request(event_time=5.0)
    assert merge([scan, scan]).objects == listing and merge([scan]).from_scan
    merged = merge([scan, event, Request(event_time=3.0)])
    assert merged.objects is None and merged.event_time == 3.0 and not merged.from_scan
