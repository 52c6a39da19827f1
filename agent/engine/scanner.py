"""The full scan: every model, listed and reconciled. The only trigger when no event source is set,
the safety net for lost events when one is (at a longer, jittered interval).

In `dir` mode one paginated listing of the whole folder serves every model, so a scan costs
LIST pages, not one call per model; models whose folder is gone are reconciled with an empty listing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from concurrent.futures import Future, wait

from agent.boundaries.sources import ModelObjects
from agent.domain.errors import ReloaderError
from agent.domain.locations import Location, S3Location
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
        """One paginated listing for every model. S3 lists keys in order, so the keys of one model are
        contiguous: once a page ends, every model in it but the last is listed whole and is reconciled
        while the next page is listed (10,000 models: the reconciles overlap the LIST calls)."""
        directory = self._models.directory
        assert directory is not None
        streaming = not _unordered(directory)
        futures: list[Future[Outcome]] = []
        grouped: dict[str, list[ObjectInfo]] = {}
        seen: set[str] = set()
        named, valid = "", False  # the last name checked: a model's keys are contiguous
        try:
            for page in self._objects.pages(directory):
                for obj in page:
                    name, _, rest = obj.key.partition("/")
                    if name != named:
                        named, valid = name, is_model_name(name)
                    if rest and valid:
                        grouped.setdefault(name, []).append(ObjectInfo(rest, obj.size, obj.etag, obj.last_modified))
                        seen.add(name)
                if streaming and page:
                    continued = page[-1].key.partition("/")[0]  # only the page's last model may go on
                    futures += self._submit([(name, grouped.pop(name)) for name in list(grouped) if name != continued])
        except ReloaderError as error:
            self._report(f"cannot list {directory}: {error}")
            return futures  # the models already submitted were listed whole
        self._report(None)
        futures += self._submit(sorted(grouped.items()))
        known = self._dir_models | set(self._index.models())
        self._dir_models = seen
        return futures + self._submit([(name, []) for name in sorted(known - seen)])  # their folder is gone

    def _submit(self, listed: list[tuple[str, list[ObjectInfo]]]) -> list[Future[Outcome]]:
        return self._workers.request_many([(name, Request(objects=o, from_scan=True)) for name, o in listed])


def _unordered(location: Location) -> bool:
    """S3 directory buckets (S3 Express, `...--x-s3`) do not list keys in order: no streaming there."""
    return isinstance(location, S3Location) and location.bucket.endswith("--x-s3")


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
