"""The full scan: every model, listed and reconciled. The only trigger when no event source is set,
the safety net for lost events when one is (at a longer, jittered interval).

In `dir` mode one paginated listing of the whole folder serves every model, so a scan costs
LIST pages, not one call per model; models whose folder is gone are reconciled with an empty listing.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import defaultdict
from concurrent.futures import Future, wait

from agent.boundaries.sources import ModelObjects
from agent.domain.errors import ReloaderError
from agent.domain.routing import ModelSet, is_model_name
from agent.domain.versions import ObjectInfo
from agent.engine.reconciler import Outcome
from agent.engine.registry import Registry
from agent.engine.workers import ModelWorkers, Request
from agent.metrics import Metrics

log = logging.getLogger(__name__)


class Scanner:
    def __init__(
        self,
        models: ModelSet,
        objects: ModelObjects,
        workers: ModelWorkers[Outcome],
        registry: Registry,
        metrics: Metrics,
    ) -> None:
        self._models = models
        self._objects = objects
        self._workers = workers
        self._registry = registry
        self._metrics = metrics
        self._dir_models: set[str] = set()
        self._last_error: str | None = None

    def scan(self) -> list[Outcome]:
        """Reconcile every model once; return when all are done."""
        self._metrics.scans.inc()
        futures: list[Future[Outcome]] = []
        for source in self._models.fixed:
            futures.append(self._workers.request(source.name, Request(from_scan=True)))
        if self._models.directory is not None:
            futures += self._scan_directory()
        wait(futures)
        return [f.result() for f in futures if not f.cancelled() and f.exception() is None]

    def _scan_directory(self) -> list[Future[Outcome]]:
        assert self._models.directory is not None
        try:
            objects = self._objects.list(self._models.directory)
        except ReloaderError as error:
            self._report(f"cannot list {self._models.directory}: {error}")
            return []
        self._report(None)
        grouped: dict[str, list[ObjectInfo]] = defaultdict(list)
        for obj in objects:
            name, _, rest = obj.key.partition("/")
            if rest and is_model_name(name):
                grouped[name].append(ObjectInfo(rest, obj.size, obj.etag, obj.last_modified))
        known = self._dir_models | set(self._registry.models())
        self._dir_models = set(grouped)
        return [
            self._workers.request(name, Request(objects=grouped.get(name, []), from_scan=True))
            for name in sorted(known | set(grouped))
        ]

    def _report(self, error: str | None) -> None:
        if error != self._last_error:
            if error:
                log.error("scan: %s; loaded models keep serving", error)
            else:
                log.info("scan: listing works again")
            self._last_error = error


class PeriodicScan:
    """Run `scanner.scan()` now, then every `interval` seconds (spread by `jitter`) until stopped."""

    def __init__(self, scanner: Scanner, interval: float, jitter: float) -> None:
        self._scanner = scanner
        self._interval = interval
        self._jitter = jitter
        self._stop = threading.Event()
        self.first_scan_done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scan", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._scanner.scan()
            except Exception:
                log.exception("scan crashed; trying again at the next interval")
            self.first_scan_done.set()
            spread = self._interval * self._jitter
            self._stop.wait(self._interval + random.uniform(-spread, spread))
