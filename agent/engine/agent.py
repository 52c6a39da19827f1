"""The in-replica agent: index, reconciler, model workers and the periodic scan, started and stopped together.

Readiness is a condition the agent is told about, not polled: once the first scan is done, every
version it found is loaded, failed or incomplete, except those it put off to their settle window;
each publication of a model's value is checked against those, and a deadline (`settle` +
SETTLED_BY_AGE) ends the wait for an upload that keeps changing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from agent.boundaries.sources import ModelObjects
from agent.boundaries.store import ModelStore
from agent.domain.caching import CacheSizes
from agent.domain.index import ModelState
from agent.domain.plan import SETTLED_BY_AGE
from agent.domain.routing import ModelSet
from agent.domain.settings import ReloadingSettings
from agent.domain.versions import CompletenessCheck
from agent.engine.cached_models import CachedModels
from agent.engine.early_downloads import EarlyDownloads
from agent.engine.hit_views import HitViews
from agent.engine.index import Index
from agent.engine.loaders import Loader
from agent.engine.reconciler import Outcome, Reconciler
from agent.engine.registry import Lookup, Registry
from agent.engine.residency import EveryVersion, LruCache
from agent.engine.scanner import PeriodicScan, Scanner
from agent.engine.scheduler import Scheduler
from agent.engine.workers import ModelWorkers
from agent.metrics import Metrics

log = logging.getLogger(__name__)


class EventSource(Protocol):
    """Something that turns notifications into reconcile requests (the SQS consumer)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Lifecycle(Protocol):
    """What a runtime does around the agent's start: clean the store, or take over what TF Serving serves."""

    def before_first_scan(self) -> None: ...

    def after_first_scan(self) -> None: ...

    def taken_over(self, model: str) -> Mapping[int, str]:
        """Versions (-> fingerprint) a previous run left serving and this one took over, until the first
        scan's end: with caching they stay in the cache instead of starting cold."""

    def keep(self, folders: Callable[[Path], bool]) -> None:
        """With caching: before the first scan, keep the folders a previous run left that `folders`
        claims (the cache adopts them once their model is listed)."""


class CleanStore:
    """The Python handler's lifecycle: nothing is loaded at start, so what a previous run left is stale,
    except, with caching, the version folders the cache may adopt (LruCache.left_by_previous_run)."""

    def __init__(self, store: ModelStore) -> None:
        self._store = store
        self._keep: Callable[[Path], bool] = _keep_nothing

    def keep(self, folders: Callable[[Path], bool]) -> None:
        self._keep = folders

    def before_first_scan(self) -> None:
        self._store.clean(self._keep)

    def after_first_scan(self) -> None:
        pass

    def taken_over(self, model: str) -> Mapping[int, str]:
        return {}


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
        scheduler: Scheduler | None = None,
        lifecycle: Lifecycle | None = None,
        cache: CacheSizes | None = None,
    ) -> None:
        self.models = models
        self.settings = settings
        self.registry = registry
        self.metrics = metrics or Metrics()
        self.store = store
        self.loader = loader
        self.scheduler = scheduler or Scheduler()
        self.index = Index(registry, 0.0 if settings.ready_marker else settings.settle)
        self._lifecycle = lifecycle or CleanStore(store)
        # Multi-model caching: an LRU of entries in memory and folders on disk, filled by requests
        # (`lookup`); without it every loadable version is loaded and requests read the registry.
        self.cache = None
        if cache is not None:
            views = HitViews(registry, self.index.get, self.metrics.cache_hits)
            self.index.listen(views.refresh)  # a new value may move "latest"
            self.cache = LruCache(registry, store, cache, self.metrics, self._lifecycle.taken_over, views)
            self._lifecycle.keep(self.cache.left_by_previous_run)  # a restart keeps the disk cache
        residency = self.cache or EveryVersion(registry, store)
        # With caching, the loads of one model's reconcile (cold loads of several versions) run at once.
        self._loads = (
            ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="load") if cache is not None else None
        )
        # Marker mode without caching (every complete version loads): fetch files as their events arrive.
        self._early = (
            EarlyDownloads(objects.download, store, self.scheduler, self.metrics)
            if settings.ready_marker and settings.early_downloads and cache is None
            else None
        )
        self.reconciler = Reconciler(
            models,
            objects,
            store,
            loader,
            registry,
            self.index,
            settings,
            self.metrics,
            self.scheduler,
            completeness,
            residency,
            self._loads,
            self._early,
        )
        self.workers: ModelWorkers[Outcome] = ModelWorkers(self.reconciler, self.scheduler, settings.workers)
        self.reconciler.on_wake = self.workers.at
        self.reconciler.absorb = self.workers.absorb
        self.workers.on_demand = self.reconciler.demand_arrived
        self.lookup: Lookup = registry
        if self.cache is not None:
            self.index.on_disk = self.cache.on_disk
            self.lookup = CachedModels(
                registry,
                self.index,
                self.cache,
                self.workers.request,
                self.metrics,
                settings.cold_load_deadline,
                self.scheduler.now,
            )
        self.scanner = Scanner(models, objects, self.workers, self.index, self.metrics)
        self._periodic = PeriodicScan(
            self.scanner, self.scheduler, settings.scan_interval, settings.jitter, self._after_first_scan
        )
        self.event_sources: list[EventSource] = []
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._awaiting: set[tuple[str, int]] | None = None  # settling versions the initial load waits for
        self._on_ready: list[Callable[[], None]] = []
        self.index.listen(self._published)

    @property
    def ready(self) -> bool:
        """The initial load is done: every version the first scan found is loaded, failed or incomplete."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def when_ready(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once the initial load is done (now, if it is)."""
        with self._lock:
            if not self._ready.is_set():
                self._on_ready.append(callback)
                return
        callback()

    def start(self) -> None:
        self._lifecycle.before_first_scan()
        self.scheduler.start()
        for source in self.event_sources:
            source.start()
        self._periodic.start()

    def stop(self) -> None:
        for source in self.event_sources:
            source.stop()
        self._periodic.stop()
        self.workers.stop()
        if self._loads is not None:  # after the workers: no reconcile waits for a load any more
            self._loads.shutdown(wait=True, cancel_futures=True)
        if self._early is not None:  # after the workers: no load takes from it any more
            self._early.stop()
        if self.cache is not None:
            self.cache.remember_order()
        self.scheduler.stop()

    def _after_first_scan(self) -> None:
        self._lifecycle.after_first_scan()
        if self.cache is not None:
            self.cache.after_first_scan()
        self.reconciler.count_drift = self.settings.event_driven
        # With caching nothing loads at start: ready once the first listing is in the index.
        pending = self.index.settling() if self.cache is None else set()
        if not pending:
            self._become_ready()
            return
        log.info("initial scan done; waiting for %d version(s) to settle", len(pending))
        with self._lock:
            self._awaiting = pending
        self.scheduler.call_later(self.settings.settle + SETTLED_BY_AGE, self._settle_deadline)

    def _published(self, model: str, state: ModelState) -> None:
        with self._lock:
            if self._awaiting is None:
                return
            self._awaiting = {(m, v) for m, v in self._awaiting if m != model or v in state.settling}
            done = not self._awaiting
        if done:
            self._become_ready()

    def _settle_deadline(self) -> None:
        with self._lock:
            pending, self._awaiting = self._awaiting, None
        if pending:
            names = ", ".join(f"{model} version {version}" for model, version in sorted(pending))
            log.warning("ready although still settling (their objects keep changing): %s", names)
        self._become_ready()

    def _become_ready(self) -> None:
        with self._lock:
            self._awaiting = None
            first = not self._ready.is_set()
            self._ready.set()
            callbacks, self._on_ready = self._on_ready, []
        if first:
            log.info("initial load done: %d model(s)", len(self.index.models()))
        for callback in callbacks:
            callback()


def _keep_nothing(folder: Path) -> bool:
    return False
