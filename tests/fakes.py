"""Fakes, each written once: a manual clock, a serial executor, and agents built as the CLI builds them.

Recording fakes rather than mocks (s3transfer's RecordingSubscriber style): a fake records what it
was asked and answers as the real thing would; a test moves a manual clock instead of sleeping.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from agent.boundaries.sources import ModelObjects
from agent.domain.routing import ModelSet
from agent.domain.settings import ReloadingSettings
from agent.engine.agent import Agent
from agent.engine.registry import Registry
from agent.engine.scheduler import Scheduler
from agent.metrics import Metrics
from agent.runtimes import Runtime, build_runtime


class ManualClock:
    """A clock that moves only when told (`advance`), waking whoever waits on it: tests drive time."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._waiting: weakref.WeakSet[threading.Condition] = weakref.WeakSet()

    def now(self) -> float:
        return self._now

    def wait(self, condition: threading.Condition, until: float | None) -> None:
        with self._lock:
            self._waiting.add(condition)
        condition.wait()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            waiting = list(self._waiting)
        for condition in waiting:
            with condition:
                condition.notify_all()


class SerialExecutor(Executor):
    """Runs each submitted call at once, on the caller's thread (s3transfer's serial-executor switch)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


class RecordingHandler:
    """A Python handler whose `load_model` reads `model.txt` and records every path it loads."""

    def __init__(self, load: Callable[[str], Any] | None = None) -> None:
        self.paths: list[str] = []
        self._load = load

    def load_model(self, path: str) -> Any:
        self.paths.append(path)
        if self._load is not None:
            return self._load(path)
        return Path(path, "model.txt").read_text()


def build_agent(
    models: ModelSet,
    settings: ReloadingSettings,
    model_dir: Path,
    handler: Any = None,
    handler_type: str = "python",
    scheduler: Scheduler | None = None,
    registry: Registry | None = None,
    tfserving: Any = None,
) -> tuple[Agent, Runtime]:
    """An agent on local model folders, built by the same factory as `reloader serve` / `reloader agent`."""
    registry = registry or Registry(single_model=models.fixed[0].name if models.single else None)
    scheduler = scheduler or Scheduler()
    metrics = Metrics()
    runtime = build_runtime(
        handler_type, registry, settings, model_dir, scheduler, models, metrics, tfserving=tfserving
    )
    if handler is not None:
        runtime.attach(handler)
    agent = Agent(
        models,
        ModelObjects(None),
        runtime.store,
        runtime.loader,
        registry,
        settings,
        metrics,
        runtime.completeness,
        scheduler,
        runtime.lifecycle,
    )
    return agent, runtime
