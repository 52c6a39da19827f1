"""The agent in-process, on local model folders: swaps free the old object, work per model is serial,
time-based work (retirement, backoff, settle) follows the injected clock."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path

from agent.boundaries.store import ModelStore
from agent.domain.locations import LocalLocation
from agent.domain.requests import Request
from agent.domain.routing import ModelSet, ModelSource
from agent.domain.settings import ReloadingSettings
from agent.engine.agent import Agent
from agent.engine.registry import Registry
from agent.engine.scheduler import Scheduler
from agent.engine.workers import ModelWorkers
from tests.fakes import ManualClock, RecordingHandler, SerialExecutor, build_agent
from tests.support import wait_until


class Loaded:
    def __init__(self, path: str) -> None:
        self.path = path
        self.text = Path(path, "model.txt").read_text()


def make_agent(
    tmp_path: Path, scheduler: Scheduler | None = None, **settings: float
) -> tuple[Agent, Registry, Path, RecordingHandler]:
    source = tmp_path / "models" / "m"
    (source / "1").mkdir(parents=True)
    (source / "1" / "model.txt").write_text("one")
    handler = RecordingHandler(Loaded)
    models = ModelSet(fixed=(ModelSource("m", LocalLocation(source)),), single=True)
    options = {"interval": 3600, "settle": 0, **settings}
    agent, _ = build_agent(models, ReloadingSettings(**options), tmp_path / "store", handler, scheduler=scheduler)
    return agent, agent.registry, source, handler


def test_an_in_place_update_swaps_in_a_new_folder_and_frees_the_old_object(tmp_path):
    agent, registry, source, handler = make_agent(tmp_path, retire_after=0)
    agent.start()
    try:
        assert agent.wait_ready(10)
        old = weakref.ref(registry.get())
        assert registry.get().text == "one"
        # WHEN version 1 changes in place
        (source / "1" / "model.txt").write_text("uno")
        agent.workers.request("m").result(timeout=10)
        # THEN the new content serves from a new folder, the old folder is gone and its object freed
        seen = handler.paths
        assert registry.get().text == "uno"
        assert seen[0] != seen[1] and not Path(seen[0]).exists() and Path(seen[1]).exists()
        gc.collect()
        assert old() is None
    finally:
        agent.stop()


def test_requests_for_one_model_coalesce_and_models_run_in_parallel():
    release = threading.Event()
    started = {"a": threading.Event(), "b": threading.Event()}
    calls: list[str] = []

    def work(model: str, request: Request) -> str:
        calls.append(model)
        started[model].set()
        if model == "a":
            release.wait(10)
        return model

    workers: ModelWorkers[str] = ModelWorkers(work, Scheduler(), max_workers=4)
    try:
        first = workers.request("a")
        assert started["a"].wait(5)
        # while "a" runs: five more requests for "a" coalesce, and "b" does not wait for "a"
        later = [workers.request("a") for _ in range(5)]
        assert workers.request("b").result(timeout=5) == "b"
        release.set()
        assert first.result(timeout=5) == "a" and all(f.result(timeout=5) == "a" for f in later)
        assert calls.count("a") == 2
    finally:
        workers.stop()


def test_a_retired_folder_outlives_the_swap_by_retire_after_on_the_clock(tmp_path):
    # GIVEN a store whose retirements go through a scheduler on a manual clock
    clock = ManualClock()
    scheduler = Scheduler(clock, SerialExecutor())
    store = ModelStore(tmp_path, retire_after=30, later=scheduler.call_later)
    folder = store.install("m", 1, "f" * 16, lambda into: (into / "weights").write_text("w"))
    # WHEN it is retired THEN a request that started on it can still read it until retire_after has passed
    store.retire(folder)
    clock.advance(29)
    assert scheduler.run_due() == 0 and (folder / "weights").exists()
    clock.advance(1)
    assert scheduler.run_due() == 1 and not folder.exists()


def test_a_failing_load_is_retried_when_its_backoff_has_passed_on_the_clock(tmp_path):
    # GIVEN a load_model that fails once, an agent on a manual clock with a 5 s first backoff
    clock = ManualClock()
    scheduler = Scheduler(clock, SerialExecutor())
    agent, registry, _, handler = make_agent(tmp_path, scheduler, retry_backoff=5)
    failures = [RuntimeError("disk hiccup")]

    def flaky(path: str) -> Loaded:
        if failures:
            raise failures.pop()
        return Loaded(path)

    handler._load = flaky
    agent.start()
    try:
        # WHEN the first scan runs THEN the version failed and waits for its retry
        scheduler.run_due()
        assert agent.index.snapshot()["m"]["versions"]["1"]["state"] == "failed"
        clock.advance(4.9)
        scheduler.run_due()
        assert len(handler.paths) == 1
        # WHEN the clock passes the backoff THEN it is retried, and loads
        clock.advance(0.1)
        scheduler.run_due()
        wait_until(lambda: registry.get().text == "one", timeout=5, what="the retry loaded")
        assert len(handler.paths) == 2 and agent.ready
    finally:
        agent.stop()


def test_a_fresh_version_loads_once_its_settle_window_passed_and_readiness_waits_for_it(tmp_path):
    # GIVEN a version written just now, no ready marker, a 10 s settle window, on a manual clock
    clock = ManualClock(start=time.time())
    scheduler = Scheduler(clock, SerialExecutor())
    agent, registry, _, handler = make_agent(tmp_path, scheduler, settle=10)
    agent.start()
    try:
        scheduler.run_due()
        # THEN it is settling, and the replica is not ready yet
        assert agent.index.snapshot()["m"]["versions"]["1"]["state"] == "waiting" and not agent.ready
        clock.advance(10)
        scheduler.run_due()
        wait_until(lambda: agent.ready, timeout=5, what="ready once the settled version loaded")
        assert registry.get().text == "one" and len(handler.paths) == 1
    finally:
        agent.stop()
