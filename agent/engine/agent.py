"""The in-replica agent: reconciler, per-model workers and the periodic scan, started and stopped together."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from agent.boundaries.sources import ModelObjects
from agent.boundaries.store import ModelStore
from agent.domain.plan import SETTLED_BY_AGE
from agent.domain.routing import ModelSet
from agent.domain.settings import ReloadingSettings
from agent.domain.versions import CompletenessCheck
from agent.engine.loaders import Loader, Resuming
from agent.engine.reconciler import Outcome, Reconciler
from agent.engine.registry import Registry
from agent.engine.scanner import PeriodicScan, Scanner
from agent.engine.workers import ModelWorkers, Request
from agent.metrics import Metrics

log = logging.getLogger(__name__)


class EventSource(Protocol):
    """Something that turns notifications into reconcile requests (the SQS consumer)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Agent:
    def __init__(
        self,
        models: ModelSet,
        objects: ModelObjects,
        store: ModelStore,
        loader: Loader,
        registry: Registry,
        settings: ReloadingSettings,
        metrics: Metrics | None = None,
        completeness: CompletenessCheck | None = None,
    ) -> None:
        self.models = models
        self.settings = settings
        self.registry = registry
        self.metrics = metrics or Metrics()
        self.store = store
        self.loader = loader
        self.workers: ModelWorkers[Outcome] = ModelWorkers(self._reconcile, settings.workers)
        self.reconciler = Reconciler(
            models, objects, store, loader, registry, settings, self.metrics, self.workers.at, completeness
        )
        self.scanner = Scanner(models, objects, self.workers, registry, self.metrics)
        self._periodic = PeriodicScan(self.scanner, settings.scan_interval, settings.jitter)
        self.event_sources: list[EventSource] = []
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._ready_watch = threading.Thread(target=self._after_first_scan, name="ready", daemon=True)

    @property
    def ready(self) -> bool:
        """The initial load is done: every version the first scan found is loaded, failed or incomplete."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def start(self) -> None:
        if isinstance(self.loader, Resuming):
            self.loader.resume()  # TF Serving kept serving: take over its folders rather than clean them
        else:
            self.store.clean()  # nothing is loaded yet: whatever a previous run left is stale
        for source in self.event_sources:
            source.start()
        self._periodic.start()
        self._ready_watch.start()

    def stop(self) -> None:
        self._stopping.set()
        for source in self.event_sources:
            source.stop()
        self._periodic.stop()
        self.workers.stop()

    def _reconcile(self, model: str, request: Request) -> Outcome:
        return self.reconciler(model, request)

    def _after_first_scan(self) -> None:
        self._periodic.first_scan_done.wait()
        if isinstance(self.loader, Resuming):
            self.loader.resumed()
        self.reconciler.count_drift = self.settings.event_driven
        self._await_settling()
        self._ready.set()
        log.info("initial load done: %d model(s)", len(self.registry.models()))

    def _await_settling(self) -> None:
        """Versions the first scan put off to their settle window belong to the initial load: wait until
        each is loaded or failed, or for at most `settle` + SETTLED_BY_AGE seconds (an upload still going on)."""
        pending = self.reconciler.settling()
        if not pending:
            return
        log.info("initial scan done; waiting for %d version(s) to settle", len(pending))
        deadline = time.monotonic() + self.settings.settle + SETTLED_BY_AGE
        while pending and time.monotonic() < deadline and not self._stopping.wait(0.05):
            pending &= self.reconciler.settling()
        if pending:
            names = ", ".join(f"{model} version {version}" for model, version in sorted(pending))
            log.warning("ready although still settling (their objects keep changing): %s", names)
