"""Reconcile one model: list its prefix, plan against what is loaded, download, load, swap, unload.

Level-triggered: whatever asked for the reconcile (an event, a scan, a timer), the truth is a
fresh listing of the model's prefix. Called by `ModelWorkers`, so work on one model is serial.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.boundaries.sources import ModelObjects
from agent.boundaries.store import ModelStore
from agent.domain.errors import PermanentError, ReloaderError, TemporaryError
from agent.domain.locations import Location
from agent.domain.plan import Failure, Load, Sighting, Unload, plan
from agent.domain.routing import ModelSet
from agent.domain.settings import ReloadingSettings
from agent.domain.versions import (
    CompletenessCheck,
    ModelListing,
    VersionListing,
    discover,
    event_can_matter,
    version_of_key,
)
from agent.engine.loaders import Loader
from agent.engine.registry import Registry, Served
from agent.engine.workers import Request
from agent.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    model: str
    changed: bool = False
    error: str | None = None
    temporary: bool = False  # the work is not done: an event that asked for it should be redelivered


@dataclass
class _ModelMemory:
    """What one model's reconciles remember between runs (touched only by that model's worker)."""

    failures: dict[int, Failure] = field(default_factory=dict)
    sightings: dict[int, Sighting] = field(default_factory=dict)
    known: dict[int, str] | None = None  # fingerprints of the last listing, for drift
    reported_error: str | None = None
    blocked: set[int] = field(default_factory=set)  # versions incomplete for a reason other than the marker
    # Per version its events named, the earliest event time not yet served (None: a version no key
    # told). Kept while versions wait (settle window, retry backoff), so the latency of a load a
    # timer finishes still counts from the event that announced it.
    pending_events: dict[int | None, float] = field(default_factory=dict)
    temporary: set[int] = field(default_factory=set)  # failed versions whose last failure may pass


class Reconciler:
    def __init__(
        self,
        models: ModelSet,
        objects: ModelObjects,
        store: ModelStore,
        loader: Loader,
        registry: Registry,
        settings: ReloadingSettings,
        metrics: Metrics,
        schedule: Callable[[float, str], None],
        completeness: CompletenessCheck | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._models = models
        self._objects = objects
        self._store = store
        self._loader = loader
        self._registry = registry
        self._settings = settings
        self._metrics = metrics
        self._schedule = schedule
        self._completeness = completeness
        self._clock = clock
        self._memory: dict[str, _ModelMemory] = {}
        self._settling: dict[str, frozenset[int]] = {}  # read by readiness from another thread
        self.count_drift = False  # set once the initial scan is done, when events are the trigger

    def __call__(self, model: str, request: Request) -> Outcome:
        memory = self._memory.setdefault(model, _ModelMemory())
        if request.keys is not None and not self._worth_a_look(model, memory, request.keys):
            return Outcome(model)
        _remember_event(memory, request)
        source = self._models.source(model)
        try:
            objects = (
                request.objects
                if request.objects is not None
                else (self._objects.list(source.location) if source is not None else [])
            )
        except ReloaderError as error:
            self._report_model_error(model, memory, f"cannot list the model: {error}")
            return Outcome(model, error=str(error), temporary=isinstance(error, TemporaryError))
        listing = discover(objects, self._settings.ready_marker, self._completeness)
        memory.blocked = {v for v, item in listing.versions.items() if item.incomplete and not item.awaiting_marker}
        self._report_model_error(model, memory, listing.error)
        self._note_drift(model, memory, listing, request)
        now = self._clock()
        loaded = {version: served.fingerprint for version, served in self._registry.loaded(model).items()}
        settle = 0.0 if self._settings.ready_marker else self._settings.settle
        # An event (a redelivered message included) retries now the versions it names whose failure
        # may have passed: the message is left again if it fails, so its redrive policy counts the tries.
        retry_now = _named_versions(request, memory.temporary) if request.event_time is not None else set()
        failures = {v: f for v, f in memory.failures.items() if v not in retry_now}
        result = plan(listing, loaded, failures, memory.sightings, now, settle)
        memory.sightings = dict(result.sightings)
        self._forget_vanished(model, memory, listing)
        self._show_waiting(model, listing, loaded, result.settling)
        outcome = Outcome(model)
        for action in result.actions:
            if isinstance(action, Load):
                assert source is not None
                outcome = _worse(outcome, self._load(model, source.location, action, memory))
            else:
                self._unload(model, action)
                outcome = _worse(outcome, Outcome(model, changed=True))
        if result.wake_at is not None:
            self._schedule(result.wake_at, model)
        elif outcome.error is None:
            memory.pending_events.clear()  # nothing waits any more: what the events announced is done
        # published after the loads, so a settled version counts as pending until it is loaded or failed
        self._settling[model] = result.settling
        self._metrics.versions_loaded.labels(model).set(len(self._registry.loaded(model)))
        return outcome

    def _load(self, model: str, location: Location, action: Load, memory: _ModelMemory) -> Outcome:
        listing = action.listing
        version = listing.version
        context = {"model": model, "version": version}
        self._registry.set_state(model, version, "loading", listing.fingerprint)
        started = self._clock()
        try:
            folder = self._store.install(
                model,
                version,
                listing.fingerprint,
                lambda into: self._objects.download(_version_location(location, listing), listing.objects, into),
            )
        except ReloaderError as error:
            return self._failed(model, listing, memory, f"download failed: {error}", isinstance(error, TemporaryError))
        try:
            value = self._loader.load(model, version, folder)
        except TemporaryError as error:  # TF Serving unreachable or slow: keep the download for the retry
            return self._failed(model, listing, memory, str(error), True)
        except Exception as error:  # the user's load_model: any exception is a failed version
            previous = memory.failures.get(version)
            if previous is None or previous.fingerprint != listing.fingerprint:  # the traceback once, not per retry
                log.exception("load_model failed for %s version %s", model, version, extra=context)
            self._store.remove(folder)
            return self._failed(model, listing, memory, f"load_model raised {type(error).__name__}: {error}", False)
        now = self._clock()
        old = self._registry.swap_in(model, Served(version, listing.fingerprint, folder, value, now))
        del value
        memory.failures.pop(version, None)
        memory.temporary.discard(version)
        if old is not None and old.path != folder:
            self._loader.unload(model, version, old.value)
            self._store.retire(old.path)
        del old
        self._metrics.load_duration.labels(model).observe(now - started)
        announced = memory.pending_events.pop(version, memory.pending_events.get(None))
        if announced is not None:
            self._metrics.reload_latency.labels(model).observe(max(0.0, now - announced))
        verb = "reloaded (updated in place)" if action.replaces else "loaded"
        log.info("%s %s version %s (%.3f s)", verb, model, version, now - started, extra=context)
        return Outcome(model, changed=True)

    def _failed(
        self, model: str, listing: VersionListing, memory: _ModelMemory, error: str, temporary: bool
    ) -> Outcome:
        version = listing.version
        previous = memory.failures.get(version)
        attempts = previous.attempts + 1 if previous and previous.fingerprint == listing.fingerprint else 1
        delay = min(self._settings.retry_backoff * 2 ** (attempts - 1), self._settings.retry_backoff_max)
        memory.failures[version] = Failure(listing.fingerprint, self._clock() + delay, attempts, error)
        if temporary:
            memory.temporary.add(version)
        else:
            memory.temporary.discard(version)
        self._registry.record_failure(model, version, listing.fingerprint, error, attempts)
        self._metrics.load_failures.labels(model).inc()
        if attempts == 1:
            log.warning(
                "%s version %s failed: %s (retrying with backoff)",
                model,
                version,
                error,
                extra={"model": model, "version": version},
            )
        self._schedule(self._clock() + delay, model)
        return Outcome(model, error=error, temporary=temporary)

    def _unload(self, model: str, action: Unload) -> None:
        old = self._registry.remove(model, action.version)
        if old is not None:
            self._loader.unload(model, action.version, old.value)
            self._store.retire(old.path)
            log.info(
                "unloaded %s version %s: %s",
                model,
                action.version,
                action.reason,
                extra={"model": model, "version": action.version},
            )
        del old

    def _worth_a_look(self, model: str, memory: _ModelMemory, keys: frozenset[str]) -> bool:
        """Whether any changed key can change what serves (see versions.event_can_matter)."""
        known = set(self._registry.loaded(model)) | set(memory.failures) | memory.blocked
        return any(event_can_matter(key, self._settings.ready_marker, known) for key in keys)

    def _report_model_error(self, model: str, memory: _ModelMemory, error: str | None) -> None:
        self._registry.set_model_error(model, error)
        if error != memory.reported_error:
            if error:
                log.error("%s: %s; loaded versions keep serving", model, error, extra={"model": model})
            elif memory.reported_error:
                log.info("%s: recovered", model, extra={"model": model})
            memory.reported_error = error

    def _note_drift(self, model: str, memory: _ModelMemory, listing: ModelListing, request: Request) -> None:
        known = {version: item.fingerprint for version, item in listing.versions.items()}
        # A model listed for the first time (a new folder in `dir` mode) changed from nothing.
        previous = memory.known if memory.known is not None else {}
        if request.from_scan and self.count_drift and known != previous:
            self._metrics.drift.labels(model).inc()
            log.warning("scan found a change no event announced", extra={"model": model})
        memory.known = known

    def _forget_vanished(self, model: str, memory: _ModelMemory, listing: ModelListing) -> None:
        loadable = listing.loadable
        memory.failures = {v: f for v, f in memory.failures.items() if v in loadable}
        memory.temporary &= set(memory.failures)
        self._registry.prune(model, set(listing.versions))

    def settling(self) -> set[tuple[str, int]]:
        """(model, version) of the versions waiting for their listing to settle (any thread)."""
        return {(model, version) for model, versions in list(self._settling.items()) for version in versions}

    def _show_waiting(
        self, model: str, listing: ModelListing, loaded: dict[int, str], settling: frozenset[int]
    ) -> None:
        for version, item in listing.versions.items():
            if version in loaded:
                continue
            if item.incomplete:
                self._registry.set_state(model, version, "waiting", item.fingerprint, item.incomplete)
            elif version in settling:
                reason = f"settling: loads once its listing stays unchanged for {self._settings.settle:g} s"
                self._registry.set_state(model, version, "waiting", item.fingerprint, reason)


def _named_versions(request: Request, among: set[int]) -> set[int]:
    """The versions of `among` that the request's keys name (all of them when it names no keys)."""
    if request.keys is None:
        return set(among)
    return {version_of_key(key) for key in request.keys} & among


def _remember_event(memory: _ModelMemory, request: Request) -> None:
    if request.event_time is None:
        return
    versions: set[int | None] = {None}
    if request.keys is not None:
        versions = {version_of_key(key) for key in request.keys}
    for version in versions:
        memory.pending_events[version] = min(request.event_time, memory.pending_events.get(version, request.event_time))


def _version_location(location: Location, listing: VersionListing) -> Location:
    return location.child(listing.prefix.rstrip("/")) if listing.prefix else location


def _worse(a: Outcome, b: Outcome) -> Outcome:
    return Outcome(
        a.model,
        changed=a.changed or b.changed,
        error=a.error or b.error,
        temporary=a.temporary or b.temporary,
    )


__all__ = ["Outcome", "PermanentError", "Reconciler"]
