"""The full scan: every model, listed and reconciled. The only trigger when no event source is set,
the safety net for lost events when one is (at a longer, jittered interval).

In `dir` mode one paginated listing of the whole folder serves every model, so a scan costs
LIST pages, not one call per model; models whose folder is gone are reconciled with an empty listing.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, wait

from agent.boundaries.sources import ModelObjects
from agent.domain.errors import ReloaderError
from agent.domain.requests import Request
from agent.domain.routing import ModelSet, is_model_name
from agent.domain.versions import ObjectInfo
from agent.engine.index import Index
from agent.engine.reconciler import Outcome
from agent.engine.scheduler import Handle, Scheduler
from agent.engine.state_log import StateLog
from agent.engine.workers import ModelWorkers
from agent.metrics import Metrics

log = logging.getLogger(__name__)


class Scanner:
    def __init__(
        self,
        models: ModelSet,
        objects: ModelObjects,
        workers: ModelWorkers[Outcome],
        index: Index,
        metrics: Metrics,
    ) -> None:
        self._models = models
        self._objects = objects
        self._workers = workers
        self._index = index
        self._metrics = metrics
        self._dir_models: set[str] = set()
        self._report = StateLog(log, "scan: %s; loaded models keep serving", "scan: listing works again")

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
        known = self._dir_models | set(self._index.models())
        self._dir_models = set(grouped)
        return [
            self._workers.request(name, Request(objects=grouped.get(name, []), from_scan=True))
            for name in sorted(known | set(grouped))
        ]


class PeriodicScan:
    """Run `scanner.scan()` now, then every `interval` seconds (spread by `jitter`) until stopped;
    `on_first_scan()` once the first one is done (or failed)."""

    def __init__(
        self,
        scanner: Scanner,
        scheduler: Scheduler,
        interval: float,
        jitter: float,
        on_first_scan: Callable[[], None],
    ) -> None:
        self._scanner = scanner
        self._scheduler = scheduler
        self._on_first_scan: Callable[[], None] | None = on_first_scan
        spread = interval * jitter
        self._interval = lambda: interval + random.uniform(-spread, spread)
        self._handle: Handle | None = None

    def start(self) -> None:
        self._handle = self._scheduler.every(self._interval, self._scan, first=0)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _scan(self) -> None:
        try:
            self._scanner.scan()
        finally:
            first, self._on_first_scan = self._on_first_scan, None
            if first is not None:
                first()
