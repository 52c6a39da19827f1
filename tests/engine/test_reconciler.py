"""The reconciler itself, on local folders and a manual clock: what one reconcile lists, loads, records and reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.boundaries.sources import ModelObjects
from agent.boundaries.store import ModelStore
from agent.domain.errors import TemporaryError
from agent.domain.locations import LocalLocation
from agent.domain.requests import Request
from agent.domain.routing import ModelSet, ModelSource
from agent.domain.settings import ReloadingSettings
from agent.engine.index import Index
from agent.engine.reconciler import Reconciler
from agent.engine.registry import Registry
from agent.engine.scheduler import Scheduler
from agent.metrics import Metrics
from tests.fakes import ManualClock, SerialExecutor


class CountingObjects(ModelObjects):
    """Local folders, counting the listings."""

    def __init__(self) -> None:
        super().__init__(None)
        self.lists = 0

    def list(self, location: Any) -> Any:
        self.lists += 1
        return super().list(location)


class SwitchLoader:
    """Loads a version's model.txt; `temporary` makes the next loads fail with a TemporaryError."""

    def __init__(self) -> None:
        self.temporary: str | None = None
        self.loads = 0

    def load(self, model: str, version: int, path: Path) -> str:
        self.loads += 1
        if self.temporary:
            raise TemporaryError(self.temporary)
        return (path / "model.txt").read_text()

    def unload(self, model: str, version: int, value: Any) -> None:
        pass

    def describe(self, value: Any) -> dict[str, Any]:
        return {}


class World:
    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.source = tmp_path / "models" / "m"
        self.clock = ManualClock()
        self.scheduler = Scheduler(self.clock, SerialExecutor())
        self.registry = Registry(single_model="m")
        self.settings = ReloadingSettings(**{"settle": 0, "retry_backoff": 5, **settings})
        self.index = Index(self.registry, self.settings.settle)
        self.objects = CountingObjects()
        self.loader = SwitchLoader()
        self.metrics = Metrics()
        self.wakes: list[float] = []
        self.reconcile = Reconciler(
            ModelSet(fixed=(ModelSource("m", LocalLocation(self.source)),), single=True),
            self.objects,
            ModelStore(tmp_path / "store"),
            self.loader,
            self.registry,
            self.index,
            self.settings,
            self.metrics,
            self.scheduler,
        )
        self.reconcile.on_wake = lambda when, model: self.wakes.append(when)

    def put(self, version: int, text: str, marker: bool = False) -> None:
        folder = self.source / str(version)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.txt").write_text(text)
        if marker:
            (folder / "_READY").write_text("")

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def status(self, version: int) -> dict[str, Any]:
        return dict(self.index.snapshot()["m"]["versions"][str(version)])


def test_a_temporary_failure_backs_off_and_a_redelivered_event_retries_it_at_once(tmp_path):
    # GIVEN a version whose load fails for a reason that may pass
    world = World(tmp_path)
    world.put(1, "one")
    world.loader.temporary = "TF Serving busy"
    outcome = world.reconcile("m", Request(from_scan=True))
    # THEN the outcome asks for redelivery, the version waits 5 s, and /models says why
    assert outcome.temporary and world.wakes == [world.clock.now() + 5]
    assert world.status(1) == {**world.status(1), "state": "failed", "attempts": 1, "error": "TF Serving busy"}
    # WHEN a scan comes before the backoff passed THEN nothing is loaded
    world.reconcile("m", Request(from_scan=True))
    assert world.loader.loads == 1
    # WHEN the message is redelivered (an event naming the version) THEN it is retried at once, and loads
    world.loader.temporary = None
    world.reconcile("m", Request(event_time=world.clock.now(), keys=frozenset({"1/model.txt"})))
    assert world.registry.get() == "one" and world.status(1)["state"] == "ready"


def test_the_reload_latency_counts_from_the_event_that_announced_the_version(tmp_path):
    world = World(tmp_path)
    world.put(1, "one")
    announced = world.clock.now()
    world.clock.advance(0.25)
    world.reconcile("m", Request(event_time=announced, keys=frozenset({"1/model.txt"})))
    assert world.sample("reloader_reload_latency_seconds_sum", model="m") == pytest.approx(0.25)
    assert world.index.get("m").last_event == announced


def test_in_marker_mode_an_event_for_a_file_of_an_unknown_version_costs_no_listing(tmp_path):
    world = World(tmp_path, ready_marker="_READY")
    world.put(2, "two")
    # WHEN the event of a file before the marker arrives THEN nothing is listed
    world.reconcile("m", Request(event_time=world.clock.now(), keys=frozenset({"2/model.txt"})))
    assert world.objects.lists == 0 and world.loader.loads == 0
    # WHEN the marker's event arrives THEN one listing, one load
    world.put(2, "two", marker=True)
    world.reconcile("m", Request(event_time=world.clock.now(), keys=frozenset({"2/_READY"})))
    assert world.objects.lists == 1 and world.registry.get() == "two"


def test_drift_is_counted_only_for_scans_once_events_are_the_trigger(tmp_path):
    world = World(tmp_path)
    world.put(1, "one")
    world.reconcile("m", Request(from_scan=True))  # the initial scan: no drift counted yet
    world.reconcile.count_drift = True
    world.put(2, "two")
    world.reconcile("m", Request(event_time=world.clock.now()))  # an event found it: no drift
    world.put(3, "three")
    world.reconcile("m", Request(from_scan=True))  # only the scan found version 3: drift
    assert world.sample("reloader_scan_drift_total", model="m") == 1


def test_a_model_whose_prefix_turns_invalid_keeps_serving_and_says_why(tmp_path):
    world = World(tmp_path)
    world.put(1, "one")
    world.reconcile("m", Request(from_scan=True))
    (world.source / "stray.txt").write_text("x")
    world.reconcile("m", Request(from_scan=True))
    model = world.index.snapshot()["m"]
    assert world.registry.get() == "one" and "other entries beside them" in model["error"]
    assert model["versions"]["1"]["state"] == "ready"
