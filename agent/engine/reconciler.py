"""Reconcile one model: list its prefix, fold it into the model's index value, plan, act, record.

Level-triggered: whatever asked for the reconcile (an event, a scan, a timer), the truth is a
fresh listing of the model's prefix. Called by `ModelWorkers`, so work on one model is serial and
the model's value (agent.domain.index.ModelState) has one owner: this call, on that model's worker.
The pure steps (observe, plan, record) decide; this module only does what they say and reports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from queue import SimpleQueue

from agent.boundaries.sources import ModelObjects
from agent.boundaries.store import ModelStore
from agent.domain.errors import ReloaderError, TemporaryError
from agent.domain.index import ModelState, Served, known_versions, note_event, observe, retry_now
from agent.domain.locations import Location
from agent.domain.plan import Backoff, Failed, Load, Loaded, Plan, Result, Unload, Unloaded, plan, record
from agent.domain.requests import Request
from agent.domain.routing import ModelSet
from agent.domain.settings import ReloadingSettings
from agent.domain.versions import CompletenessCheck, VersionListing, discover, early_downloads, event_can_matter
from agent.engine.early_downloads import EarlyDownloads
from agent.engine.index import Index
from agent.engine.loaders import Loader
from agent.engine.registry import Registry
from agent.engine.residency import EveryVersion, Residency
from agent.engine.scheduler import Scheduler
from agent.logs import model_logger
from agent.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    model: str
    changed: bool = False
    error: str | None = None
    temporary: bool = False  # the work is not done: an event that asked for it should be redelivered
    # The versions a request asked for (Request.demand) that serve once this reconcile is done: the
    # waiting request takes its object from here, even if another insertion evicted it since.
    served: Mapping[int, Served] = field(default_factory=dict)


class Reconciler:
    def __init__(
        self,
        models: ModelSet,
        objects: ModelObjects,
        store: ModelStore,
        loader: Loader,
        registry: Registry,
        index: Index,
        settings: ReloadingSettings,
        metrics: Metrics,
        scheduler: Scheduler,
        completeness: CompletenessCheck | None = None,
        residency: Residency | None = None,
        loads: Executor | None = None,
        early: EarlyDownloads | None = None,
    ) -> None:
        self._models = models
        self._objects = objects
        self._store = store
        self._loader = loader
        self._registry = registry
        self._index = index
        self._settings = settings
        self._metrics = metrics
        self._scheduler = scheduler
        self._completeness = completeness
        self._residency: Residency = residency or EveryVersion(registry, store)
        # Marker mode: a version's files are fetched as their events arrive (early_downloads).
        self._early = early
        self._fill = early.fill if early is not None else objects.download
        self._backoff = Backoff(settings.retry_backoff, settings.retry_backoff_max)
        self._settle = 0.0 if settings.ready_marker else settings.settle
        self.count_drift = False  # set once the initial scan is done, when events are the trigger
        self.on_wake: Callable[[float, str], None] = _nothing  # ModelWorkers.at, set by the agent
        # With caching: the loads of one reconcile run at once on this pool (bounded by its size), and
        # requests for more versions that arrive meanwhile are absorbed into it (ModelWorkers.absorb).
        self._loads = loads
        self.absorb: Callable[[str], frozenset[int]] = _no_demand  # ModelWorkers.absorb, set by the agent
        self._signals: dict[str, SimpleQueue[Future[Result] | None]] = {}  # model -> its loads' reports
        self._signals_lock = threading.Lock()

    def __call__(self, model: str, request: Request) -> Outcome:
        before = self._index.get(model)
        versions = request.versions
        state = note_event(before, request.event_time, versions)
        loaded = self._registry.loaded(model)
        look = not request.demand_only
        self._fetch_early(model, state, loaded, request)
        if look and request.keys is not None and not self._worth_a_look(state, loaded, request.keys):
            if not request.demand:
                self._index.publish(model, state)
                return Outcome(model)
            look = False  # only the versions a request asked for: the index knows them
        now = self._scheduler.now()
        timeline = _Timeline.of(request, now)
        if request.event_time is not None:
            state = retry_now(state, versions, now)
        source = self._models.source(model)
        if look:
            try:
                objects = (
                    request.objects
                    if request.objects is not None
                    else (self._objects.list(source.location) if source is not None else [])
                )
            except ReloaderError as error:
                self._publish(model, before, replace(state, error=f"cannot list the model: {error}"))
                return Outcome(model, error=str(error), temporary=isinstance(error, TemporaryError))
            if timeline is not None:
                timeline.listed = self._scheduler.now()
            listing = discover(objects, self._settings.ready_marker, self._completeness)
            observed = observe(state, listing, now, request.from_scan, self.count_drift)
            state = observed.state
            if observed.drift:
                self._metrics.drift.labels(model).inc()
                model_logger(log, model).warning("scan found a change no event announced")
            self._report_error(model, before, state)
            self._residency.observed(model, state)
        fingerprints = {v: served.fingerprint for v, served in loaded.items()}
        eager = self._residency.eager(model, state, fingerprints, request.demand)
        planned = plan(state, fingerprints, now, self._settle, eager)
        self._publish_loading(model, state, planned.loads)
        assert source is not None or not planned.loads
        location = source.location if source else None
        demand = set(request.demand)  # grows with the requests a concurrent run absorbs
        results = self._run(model, state, planned, location, demand, timeline)
        recorded = record(state, planned, results, self._scheduler.now(), self._backoff)
        self._index.publish(model, recorded.state)
        if recorded.wake_at is not None:
            self.on_wake(recorded.wake_at, model)
        now_loaded = self._registry.loaded(model)
        if now_loaded or loaded:  # with caching most models have nothing loaded: no series for them
            self._metrics.versions_loaded.labels(model).set(len(now_loaded))
        served = {v: now_loaded[v] for v in demand if v in now_loaded}
        return _outcome(model, results, served)

    def _publish_loading(self, model: str, state: ModelState, loads: frozenset[int]) -> None:
        """`/models` says `loading` while they run (without loads the value is published once, at the end)."""
        if loads:
            self._index.publish(model, replace(state, loading=loads))

    def demand_arrived(self, model: str) -> None:
        """A request for a version waits behind this model's running reconcile (ModelWorkers.on_demand)."""
        with self._signals_lock:
            signals = self._signals.get(model)
        if signals is not None:
            signals.put(None)

    def _run(
        self,
        model: str,
        state: ModelState,
        planned: Plan,
        location: Location | None,
        demand: set[int],
        timeline: _Timeline | None,
    ) -> list[Result]:
        if self._loads is None or not planned.loads:  # one after the other, on this thread
            return [
                self._act(model, state, action, location, action.version in demand, timeline)
                for action in planned.actions
            ]
        return self._concurrently(self._loads, model, state, planned, location, demand, timeline)

    def _concurrently(
        self,
        pool: Executor,
        model: str,
        state: ModelState,
        planned: Plan,
        location: Location | None,
        demand: set[int],
        timeline: _Timeline | None,
    ) -> list[Result]:
        """The plan's loads at once on the load pool, then its unloads. Requests for other versions of
        the model that arrive meanwhile are absorbed: their loads start beside the running ones, and
        every result is folded into this reconcile's one value (this worker stays its only writer)."""
        signals: SimpleQueue[Future[Result] | None] = SimpleQueue()
        running: set[Future[Result]] = set()
        started: set[int] = set()
        results: list[Result] = []

        def start(load: Load) -> None:
            started.add(load.version)
            future = pool.submit(self._act, model, state, load, location, load.version in demand, timeline)
            running.add(future)
            future.add_done_callback(signals.put)

        for action in planned.actions:
            if isinstance(action, Load):
                start(action)
        with self._signals_lock:
            self._signals[model] = signals
        signals.put(None)  # a request that came before the signals were set up is absorbed too
        try:
            while running:
                signal = signals.get()
                if signal is not None:
                    running.discard(signal)
                    results.append(signal.result())
                    continue
                asked = self.absorb(model)
                demand |= asked  # their futures get this outcome: it must carry their versions
                wanted = asked - started
                loaded = {v: served.fingerprint for v, served in self._registry.loaded(model).items()}
                extra = plan(state, loaded, self._scheduler.now(), self._settle, frozenset(wanted))
                fresh = [a for a in extra.actions if isinstance(a, Load) and a.version in wanted]
                for load in fresh:
                    start(load)
                if fresh:
                    self._publish_loading(model, state, frozenset(started))
        finally:
            with self._signals_lock:
                self._signals.pop(model, None)
        for action in planned.actions:
            if isinstance(action, Unload):
                results.append(self._act(model, state, action, location))
        return results

    def _act(
        self,
        model: str,
        state: ModelState,
        action: Load | Unload,
        location: Location | None,
        cold: bool = False,
        timeline: _Timeline | None = None,
    ) -> Result:
        if isinstance(action, Unload):
            return self._unload(model, action)
        assert location is not None
        self._residency.begin_load(model, action.version)
        try:
            return self._load(model, state, location, action, cold, timeline)
        finally:
            self._residency.end_load(model, action.version)

    def _load(
        self,
        model: str,
        state: ModelState,
        location: Location,
        action: Load,
        cold: bool = False,
        timeline: _Timeline | None = None,
    ) -> Result:
        """Download (unless the folder is on disk), load, swap in: for the reconciler's own loads and for
        the cold loads requests ask for (`cold`), the same code."""
        listing = action.listing
        version = listing.version
        logger = model_logger(log, model, version)
        started = self._scheduler.now()
        self._residency.installing(model, version, listing.fingerprint)
        try:
            folder = self._store.install(
                model,
                version,
                listing.fingerprint,
                lambda into: self._fill(_version_location(location, listing), listing.objects, into),
            )
        except ReloaderError as error:
            return self._failed(model, state, listing, f"download failed: {error}", error)
        self._residency.installed(model, version, listing.fingerprint, folder)
        downloaded = self._scheduler.now()
        try:
            value = self._loader.load(model, version, folder)
        except TemporaryError as error:  # TF Serving unreachable or slow: keep the download for the retry
            return self._failed(model, state, listing, str(error), error)
        except Exception as error:  # the user's load_model: any exception is a failed version
            entry = state.versions.get(version)
            previous = entry.failure if entry is not None else None
            if previous is None or previous.fingerprint != listing.fingerprint:  # the traceback once, not per retry
                logger.exception("load_model failed for %s version %s", model, version)
            self._residency.discard(folder)  # its content failed: not kept on disk
            return self._failed(model, state, listing, f"load_model raised {type(error).__name__}: {error}", None)
        now = self._scheduler.now()
        served = Served(version, listing.fingerprint, folder, value, now, self._loader.describe(value))
        swapped = self._residency.swap_in(model, served)
        swapped_at = self._scheduler.now()
        del value, served
        old = swapped.replaced
        if old is not None and old.path != folder:
            self._loader.unload(model, version, old.value)
            self._residency.retire(old.path)
        self._drop_evicted(swapped.evicted)
        del old, swapped
        if cold:
            self._metrics.cold_load_seconds.labels("download").observe(downloaded - started)
            self._metrics.cold_load_seconds.labels("load").observe(now - downloaded)
        self._metrics.load_duration.labels(model).observe(now - started)
        announced = state.announced(version)
        if announced is not None:
            self._metrics.reload_latency.labels(model).observe(max(0.0, now - announced))
            if timeline is not None:
                self._metrics.stages(timeline.event, timeline.marks(downloaded, now, swapped_at))
        verb = "reloaded (updated in place)" if action.replaces else "loaded"
        logger.info("%s %s version %s (%.3f s)", verb, model, version, now - started)
        return Loaded(version, now)

    def _drop_evicted(self, evicted: list[tuple[str, Served]]) -> None:
        """Entries an insertion evicted (cache_size): dropped by the runtime; their folders stay on disk."""
        for model, served in evicted:
            self._loader.unload(model, served.version, served.value)
            model_logger(log, model, served.version).info(
                "evicted %s version %s from memory (cache_size)", model, served.version
            )

    def _failed(
        self, model: str, state: ModelState, listing: VersionListing, error: str, cause: ReloaderError | None
    ) -> Failed:
        """A failed attempt: counted, and logged once per content (its retries say nothing)."""
        version = listing.version
        entry = state.versions.get(version)
        previous = entry.failure if entry is not None else None
        self._metrics.load_failures.labels(model).inc()
        if previous is None or previous.fingerprint != listing.fingerprint:
            logger = model_logger(log, model, version)
            logger.warning("%s version %s failed: %s (retrying with backoff)", model, version, error)
        if isinstance(cause, TemporaryError):
            return Failed(version, listing.fingerprint, error, True, cause.delay)
        return Failed(version, listing.fingerprint, error, False)

    def _unload(self, model: str, action: Unload) -> Result:
        old = self._registry.remove(model, action.version)
        if old is not None:
            self._loader.unload(model, action.version, old.value)
            self._residency.retire(old.path)
            logger = model_logger(log, model, action.version)
            logger.info("unloaded %s version %s: %s", model, action.version, action.reason)
        del old
        return Unloaded(action.version, self._scheduler.now())

    def _fetch_early(self, model: str, state: ModelState, loaded: Mapping[int, Served], request: Request) -> None:
        """Start downloading the files the events say were written to versions not complete yet."""
        if self._early is None or not request.landed:
            return
        source = self._models.source(model)
        if source is None:
            return
        objects = early_downloads(request.landed, self._settings.ready_marker, known_versions(state, loaded))
        if objects:
            self._early.start(model, source.location, objects)

    def _worth_a_look(self, state: ModelState, loaded: Mapping[int, Served], keys: frozenset[str]) -> bool:
        """Whether any changed key can change what serves (see versions.event_can_matter)."""
        known = known_versions(state, loaded)
        return any(event_can_matter(key, self._settings.ready_marker, known) for key in keys)

    def _publish(self, model: str, before: ModelState, state: ModelState) -> None:
        self._report_error(model, before, state)
        self._index.publish(model, state)

    def _report_error(self, model: str, before: ModelState, state: ModelState) -> None:
        """One line when the model's error appears, changes or clears; nothing while it stays."""
        if state.error != before.error:
            logger = model_logger(log, model)
            if state.error:
                logger.error("%s: %s; loaded versions keep serving", model, state.error)
            elif before.error:
                logger.info("%s: recovered", model)


@dataclass
class _Timeline:
    """When an event-driven reconcile passed each stage (the scheduler's clock), for reloader_reload_stage_seconds."""

    event: float  # the S3 event's time: of the earliest event merged into this reconcile
    received: float
    started: float
    listed: float = 0.0

    @classmethod
    def of(cls, request: Request, now: float) -> _Timeline | None:
        if request.received is None or request.event_time is None:
            return None
        return cls(request.event_time, request.received, now, now)

    def marks(self, downloaded: float, loaded: float, swapped: float) -> list[tuple[str, float]]:
        return [
            ("delivery", self.received),
            ("dispatch", self.started),
            ("list", self.listed),
            ("download", downloaded),
            ("load", loaded),
            ("swap", swapped),
        ]


def _nothing(when: float, model: str) -> None:
    pass


def _no_demand(model: str) -> frozenset[int]:
    return frozenset()


def _version_location(location: Location, listing: VersionListing) -> Location:
    return location.child(listing.prefix.rstrip("/")) if listing.prefix else location


def _outcome(model: str, results: list[Result], served: Mapping[int, Served]) -> Outcome:
    if not results:
        return Outcome(model, served=served)
    failures = [result for result in results if isinstance(result, Failed)]
    return Outcome(
        model,
        changed=any(not isinstance(result, Failed) for result in results),
        error=failures[0].error if failures else None,
        temporary=any(failure.temporary for failure in failures),
        served=served,
    )
