"""Why a model is reconciled, and which models one message's events ask for: pure values.

An event only names a model to look at now (with the keys that changed and the event's time);
a scan brings the listing it already made. Requests for one model that queue up while its
worker is busy merge into one (`merge`), so a burst of events costs one reconcile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.domain.routing import ModelSet
from agent.domain.versions import ObjectInfo, version_of_key

if TYPE_CHECKING:  # an annotation only: Powertools' models load with the SQS consumer, not in poll mode
    from agent.domain.events import ObjectEvent


@dataclass(frozen=True)
class Request:
    """Why a model is reconciled: its objects when a scan already listed them, an event's time."""

    objects: Sequence[ObjectInfo] | None = None
    event_time: float | None = None
    from_scan: bool = False
    keys: frozenset[str] | None = None  # the changed keys (relative to the model) an event named; None: look
    received: float | None = None  # when the event's message was received (reloader_reload_stage_seconds)
    # Versions a request (get_model) needs loaded now (multi-model caching): the index says what S3
    # holds, so such a reconcile lists nothing unless merged with one that must.
    demand: frozenset[int] = frozenset()
    # The objects the events say were written (keys relative to the model, with size and ETag): those
    # of a version its marker has not completed yet can be downloaded before it lands (early_downloads).
    landed: tuple[ObjectInfo, ...] = ()

    @property
    def demand_only(self) -> bool:
        return bool(self.demand) and self.event_time is None and not self.from_scan and self.objects is None

    @property
    def versions(self) -> frozenset[int] | None:
        """The versions the request's keys belong to; None when it names no keys (every version)."""
        return None if self.keys is None else frozenset(version_of_key(key) for key in self.keys)


def merge(requests: Sequence[Request]) -> Request:
    """One request that serves all: re-list unless every one brought a listing (or only asks for versions
    the index knows); earliest event time; every version asked for."""
    if len(requests) == 1:  # the common case: nothing to merge
        return requests[0]
    demand = frozenset().union(*(r.demand for r in requests))
    looks = [r for r in requests if not r.demand_only]
    if not looks:
        return Request(demand=demand)
    objects = looks[-1].objects if all(r.objects is not None for r in looks) else None
    times = [r.event_time for r in looks if r.event_time is not None]
    keys = None
    if all(r.keys is not None for r in looks):
        keys = frozenset().union(*(r.keys for r in looks if r.keys is not None))
    received = min((r.received for r in looks if r.received is not None), default=None)
    landed = tuple(obj for r in looks for obj in r.landed)
    return Request(objects, min(times, default=None), all(r.from_scan for r in looks), keys, received, demand, landed)


@dataclass(frozen=True)
class Routed:
    """What one message asks for: a reconcile per affected model, with its earliest event time and keys."""

    models: dict[str, Request]
    ignored: int


def route(events: tuple[ObjectEvent, ...], models: ModelSet) -> Routed:
    times: dict[str, float] = {}
    keys: dict[str, set[str]] = {}
    landed: dict[str, list[ObjectInfo]] = {}
    ignored = 0
    for event in events:
        found = models.locate(event.bucket, event.key)
        if found is None:
            ignored += 1
            continue
        name, key = found
        times[name] = min(event.time, times.get(name, event.time))
        keys.setdefault(name, set()).add(key)
        if not event.removed and event.etag and event.size >= 0:
            landed.setdefault(name, []).append(ObjectInfo(key, event.size, event.etag))
    return Routed(
        {
            name: Request(event_time=times[name], keys=frozenset(keys[name]), landed=tuple(landed.get(name, ())))
            for name in times
        },
        ignored,
    )
