"""The scrape-time gauges (versions per state, readiness) and the shutdown deadline, as plain values."""

from __future__ import annotations

import threading

import pytest

from agent.api.shutdown import Shutdown
from agent.metrics import Metrics, versions_by_state


def _snapshot(**models: list[str]) -> dict:
    return {
        name: {"versions": {str(i + 1): {"state": state} for i, state in enumerate(states)}}
        for name, states in models.items()
    }


@pytest.mark.parametrize(
    ("snapshot", "expected"),
    [
        pytest.param({}, {}, id="no-models"),
        pytest.param(
            _snapshot(iris=["ready", "ready", "failed"]),
            {("iris", "ready"): 2, ("iris", "failed"): 1, ("iris", "loading"): 0, ("iris", "waiting"): 0},
            id="zeros-included",
        ),
        pytest.param(
            {"bad": {"versions": {}, "error": "invalid layout"}},
            {("bad", "ready"): 0, ("bad", "failed"): 0, ("bad", "loading"): 0, ("bad", "waiting"): 0},
            id="model-without-versions",
        ),
    ],
)
def test_versions_by_state(snapshot, expected):
    assert versions_by_state(snapshot) == expected


def test_the_gauges_are_read_at_each_scrape():
    # GIVEN metrics tracking a state that changes
    state = {"snapshot": _snapshot(iris=["loading"]), "ready": False}
    metrics = Metrics()
    metrics.track_replica_state(lambda: (state["snapshot"], state["ready"]))
    first = metrics.exposition().decode()
    assert 'reloader_versions{model="iris",state="loading"} 1.0' in first
    assert "reloader_ready 0.0" in first
    # WHEN the version loads and the replica turns ready THEN the next scrape says so
    state.update(snapshot=_snapshot(iris=["ready"]), ready=True)
    second = metrics.exposition().decode()
    assert 'reloader_versions{model="iris",state="loading"} 0.0' in second
    assert 'reloader_versions{model="iris",state="ready"} 1.0' in second
    assert "reloader_ready 1.0" in second


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_deadline_counts_from_the_signal_after_the_drain():
    clock = Clock()
    shutdown = Shutdown(drain=5, timeout=20, clock=clock)
    assert not shutdown.begun and shutdown.remaining() == 20  # no signal: the whole timeout
    shutdown.begin()
    clock.now += 3
    assert not shutdown.drained() and shutdown.remaining() == 22
    shutdown.begin()  # a second signal does not move the deadline
    clock.now += 2
    assert shutdown.drained() and shutdown.remaining() == 20
    clock.now += 30
    assert shutdown.remaining() == 0


def test_stop_within_gives_up_on_a_stop_that_overruns():
    shutdown = Shutdown(drain=0, timeout=0.2)
    shutdown.begin()
    release = threading.Event()
    assert shutdown.stop_within(lambda: release.wait(30)) is False
    assert shutdown.abandoned
    release.set()
    assert Shutdown(drain=0, timeout=5).stop_within(lambda: None) is True
