"""The agent in-process, on local model folders: swaps free the old object, work per model is serial."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

from agent.boundaries.sources import ModelObjects
from agent.boundaries.store import ModelStore
from agent.domain.locations import LocalLocation
from agent.domain.routing import ModelSet, ModelSource
from agent.domain.settings import ReloadingSettings
from agent.engine.agent import Agent
from agent.engine.loaders import PythonLoader
from agent.engine.registry import Registry
from agent.engine.workers import ModelWorkers, Request


class Loaded:
    def __init__(self, path: str) -> None:
        self.path = path
        self.text = Path(path, "model.txt").read_text()


def make_agent(tmp_path: Path) -> tuple[Agent, Registry, Path, list[str]]:
    source = tmp_path / "models" / "m"
    (source / "1").mkdir(parents=True)
    (source / "1" / "model.txt").write_text("one")
    seen: list[str] = []

    def load(path: str) -> Loaded:
        seen.append(path)
        return Loaded(path)

    registry = Registry(single_model="m")
    agent = Agent(
        ModelSet(fixed=(ModelSource("m", LocalLocation(source)),), single=True),
        ModelObjects(None),
        ModelStore(tmp_path / "store"),
        PythonLoader(load),
        registry,
        ReloadingSettings(interval=3600, settle=0),
    )
    return agent, registry, source, seen


def test_an_in_place_update_swaps_in_a_new_folder_and_frees_the_old_object(tmp_path):
    agent, registry, source, seen = make_agent(tmp_path)
    agent.start()
    try:
        assert agent.wait_ready(10)
        old = weakref.ref(registry.get())
        assert registry.get().text == "one"
        # WHEN version 1 changes in place
        (source / "1" / "model.txt").write_text("uno")
        agent.workers.request("m").result(timeout=10)
        # THEN the new content serves from a new folder, the old folder is gone and its object freed
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

    workers: ModelWorkers[str] = ModelWorkers(work, max_workers=4)
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
