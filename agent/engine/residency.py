"""What is kept in memory and on disk: every loadable version (no caching), or an LRU (Cortex's
`cache_size` / `disk_cache_size`).

The reconciler asks its residency which versions to load unasked (`eager`), and tells it what it
installed, swapped in and retired; the residency decides what that evicts. Two objects, one
interface, so the reconciler has no `if caching:`:

- `EveryVersion`: today's behaviour: every loadable version is loaded, a folder goes when its
  version stops serving.
- `LruCache`: at most `cache_size` entries ((model, version) each) in the registry, evicted
  inline, least recently used first (by `get_model`), at the moment one is added; at most
  `disk_cache_size` version folders, evicted the same way among those whose entry is not in memory
  nor being loaded. An entry being loaded is never evicted and counts apart, so the cache holds
  at most `cache_size` entries plus those loading (plus those requests still hold, which the
  runtime no longer references).

Thread-safety: `LruCache._lock` orders insertions and evictions across models (any model's worker
inserts, and may evict another model's entry); it is taken before `Registry._lock` and never
across I/O (folders are removed after it is released, through the store's retirement).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from agent.boundaries.store import FINGERPRINT_PREFIX, Cancellable, ModelStore
from agent.domain.caching import CacheSizes, eager_versions, victims
from agent.domain.index import ModelState, Served
from agent.engine.hit_views import HitViews
from agent.engine.registry import Registry
from agent.metrics import Metrics

Entry = tuple[str, int]  # (model, version)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Swapped:
    """What an insertion displaced: the entry's previous content, and the entries it evicted."""

    replaced: Served | None
    evicted: list[tuple[str, Served]] = field(default_factory=list)


class Residency(Protocol):
    caching: bool

    def eager(
        self, model: str, state: ModelState, loaded: Mapping[int, str], demand: frozenset[int]
    ) -> frozenset[int] | None:
        """The versions a reconcile loads (None: every loadable one)."""

    def begin_load(self, model: str, version: int) -> None: ...

    def end_load(self, model: str, version: int) -> None: ...

    def installing(self, model: str, version: int, fingerprint: str) -> None:
        """A load of that content starts (before its folder is looked for)."""

    def installed(self, model: str, version: int, fingerprint: str, folder: Path) -> None:
        """A version folder is complete on disk (downloaded, or found there)."""

    def swap_in(self, model: str, served: Served) -> Swapped: ...

    def retire(self, folder: Path) -> None:
        """The folder of a content that stopped serving (replaced, removed from S3): goes after `retire_after`."""

    def observed(self, model: str, state: ModelState) -> None:
        """The model's new index value: folders of contents S3 no longer holds go."""

    def discard(self, folder: Path) -> None:
        """A folder whose load failed: removed now (nothing serves from it)."""


class EveryVersion:
    """No caching: every loadable version is loaded and its folder kept while it serves."""

    caching = False

    def __init__(self, registry: Registry, store: ModelStore) -> None:
        self._registry = registry
        self._store = store

    def eager(
        self, model: str, state: ModelState, loaded: Mapping[int, str], demand: frozenset[int]
    ) -> frozenset[int] | None:
        return None

    def begin_load(self, model: str, version: int) -> None:
        pass

    def end_load(self, model: str, version: int) -> None:
        pass

    def installing(self, model: str, version: int, fingerprint: str) -> None:
        pass

    def installed(self, model: str, version: int, fingerprint: str, folder: Path) -> None:
        pass

    def swap_in(self, model: str, served: Served) -> Swapped:
        return Swapped(self._registry.swap_in(model, served))

    def retire(self, folder: Path) -> None:
        self._store.retire(folder)

    def observed(self, model: str, state: ModelState) -> None:
        pass

    def discard(self, folder: Path) -> None:
        self._store.remove(folder)


@dataclass(frozen=True)
class _Folder:
    model: str
    version: int
    fingerprint: str


@dataclass(frozen=True)
class _Left:
    """A complete version folder a previous run left (`<version>-<fingerprint prefix>`), not adopted yet."""

    version: int
    fingerprint_prefix: str
    path: Path
    last_use: int  # its mtime in ns: set at its load and when it left memory (see `_stamp_folders`)


# Adopted folders' last uses: below every use of this run, in the order of the previous run's (mtimes).
_BEFORE_THIS_RUN = 2**63


class LruCache:
    """At most `sizes.memory` entries in memory and `sizes.disk` folders on disk, evicted LRU at insertion."""

    caching = True

    def __init__(
        self,
        registry: Registry,
        store: ModelStore,
        sizes: CacheSizes,
        metrics: Metrics,
        taken_over: Callable[[str], Mapping[int, str]] | None = None,
        views: HitViews | None = None,
    ) -> None:
        self._registry = registry
        # What hits read (one lookup per request) and where they write each entry's last use; the LRU
        # reads those uses when it chooses a victim. Without an index (unit tests) "latest" is never set.
        self.views = views or HitViews(registry, lambda model: ModelState(), metrics.cache_hits)
        registry.on_change = self.views.refresh
        # What a previous run left serving (TF Serving's loaded versions): loaded eagerly, so a restart
        # keeps the cache warm instead of dropping it (Lifecycle.taken_over).
        self._taken_over = taken_over or _nothing_taken_over
        self._store = store
        self.sizes = sizes
        self._metrics = metrics
        self._lock = threading.Lock()
        self._stamp = metrics.cache_hits.stamp  # the LRU's clock: the hits' counter (hits tick it)
        self._folders: dict[Path, _Folder] = {}  # complete version folders on disk
        self._folder_used: dict[Path, int] = {}
        self._loading: dict[Entry, int] = {}  # entries being loaded (a count: a reload and a cold load may overlap)
        self._retiring: dict[Path, tuple[_Folder, Cancellable | None]] = {}  # evicted, removal pending
        self._ever_cached: set[str] = set()  # models that had a folder or an entry (only they can go stale)
        self._left: dict[str, list[_Left]] = {}  # folders a previous run left, per model, until its first listing
        self._last_mtime = 0
        self._in_memory_gauge = metrics.cache_entries.labels("memory")
        self._on_disk_gauge = metrics.cache_entries.labels("disk")
        self._retiring_gauge = metrics.cache_entries.labels("retiring")

    # -- requests (any thread) ---------------------------------------------------------------
    def touch(self, model: str, version: int) -> None:
        """A request used the entry: it becomes the most recently used (one write, no lock)."""
        self.views.touch(model, version)

    # -- the reconciler (the model's worker) --------------------------------------------------
    def eager(
        self, model: str, state: ModelState, loaded: Mapping[int, str], demand: frozenset[int]
    ) -> frozenset[int] | None:
        fingerprints = state.fingerprints()
        kept = {version for version, fp in self._taken_over(model).items() if fingerprints.get(version) == fp}
        return eager_versions(state, loaded) | demand | kept

    def begin_load(self, model: str, version: int) -> None:
        with self._lock:
            self._loading[(model, version)] = self._loading.get((model, version), 0) + 1
            self._metrics.cache_loads_in_flight.set(sum(self._loading.values()))

    def end_load(self, model: str, version: int) -> None:
        with self._lock:
            left = self._loading.get((model, version), 1) - 1
            if left:
                self._loading[(model, version)] = left
            else:
                self._loading.pop((model, version), None)
            self._metrics.cache_loads_in_flight.set(sum(self._loading.values()))

    def installing(self, model: str, version: int, fingerprint: str) -> None:
        """A load of that content starts: a folder of it that is retiring is kept (its removal cancelled)."""
        wanted = _Folder(model, version, fingerprint)
        with self._lock:
            for path, (folder, pending) in list(self._retiring.items()):
                if folder == wanted and pending is not None:
                    pending.cancel()
                    del self._retiring[path]
                    if path.is_dir():
                        self._folders[path] = folder
                        self._folder_used[path] = self._stamp()
            self._gauges()

    def installed(self, model: str, version: int, fingerprint: str, folder: Path) -> None:
        self._stamp_folders([folder])  # its last use, on disk: a restart adopts folders in this order
        with self._lock:
            self._ever_cached.add(model)
            self._folders[folder] = _Folder(model, version, fingerprint)
            self._folder_used[folder] = self._stamp()
            retiring = self._over_disk_size({folder})
        self._evict_from_disk(retiring)

    def _over_disk_size(self, keep: set[Path]) -> list[tuple[Path, _Folder]]:
        """Inside the lock: forget the folders beyond `disk_cache_size`, least recently used first, among
        those whose entry is neither in memory nor loading; return them (they are retired after the lock)."""
        in_memory = {path for path, f in self._folders.items() if (f.model, f.version) in self._resident_keys()}
        loading = {path for path, f in self._folders.items() if (f.model, f.version) in self._loading}
        evicted = victims(self._folder_used, self._folders, in_memory | loading | keep, self.sizes.disk)
        retiring = [(path, self._folders[path]) for path in evicted]
        for path in evicted:
            self._forget_folder(path)
        self._gauges()
        return retiring

    def _evict_from_disk(self, retiring: list[tuple[Path, _Folder]]) -> None:
        for path, record in retiring:
            self._metrics.cache_evictions.labels("disk").inc()
            self._retire(path, record)

    def swap_in(self, model: str, served: Served) -> Swapped:
        key = (model, served.version)
        evicted: list[tuple[str, Served]] = []
        with self._lock:
            self._ever_cached.add(model)
            replaced = self._registry.swap_in(model, served)  # a new entry's slot is the most recent use
            if replaced is None:  # a new entry: make room (an in-place update takes the place it had)
                keep = {key} | set(self._loading)
                used = self.views.last_used()
                for victim in victims(used, self._resident_keys(), keep, self.sizes.memory):
                    old = self._registry.remove(*victim)
                    if old is not None:
                        evicted.append((victim[0], old))
                        if old.path in self._folders and victim in used:  # on disk, its last use is its last request
                            self._folder_used[old.path] = used[victim]
            self._gauges()
        self._metrics.cache_evictions.labels("memory").inc(len(evicted))
        # LRU evicts in the order of last use, so the moment an entry leaves memory orders its folder
        # among those on disk (a restart reads that order from the mtimes).
        self._stamp_folders([old.path for _, old in evicted])
        return Swapped(replaced, evicted)

    def retire(self, folder: Path) -> None:
        with self._lock:
            known = self._folders.get(folder)
            self._forget_folder(folder)
            self._gauges()
        self._retire(folder, known)

    def observed(self, model: str, state: ModelState) -> None:
        if self._left:
            self._adopt(model, state)
        if model not in self._ever_cached:  # most models of a large `dir`: nothing of theirs to forget
            return
        fingerprints = state.fingerprints()
        with self._lock:
            stale = [
                path
                for path, f in self._folders.items()
                if f.model == model
                and fingerprints.get(f.version) != f.fingerprint
                and (model, f.version) not in self._loading
            ]
            stale_folders = [(path, self._folders[path]) for path in stale]
            for path in stale:
                self._forget_folder(path)
            if stale:
                self._gauges()
        for path, folder in stale_folders:
            self._retire(path, folder)

    def discard(self, folder: Path) -> None:
        with self._lock:
            self._forget_folder(folder)
            self._gauges()
        self._store.remove(folder)

    # -- a restart (the Python handler's store outlives the process when model_dir is set) -------
    def left_by_previous_run(self, folder: Path) -> bool:
        """Before the first scan (CleanStore.keep): whether to keep a folder a previous run left. A
        complete version folder is kept until its model's first listing, which adopts it as on disk if S3
        still holds that content, or removes it (`after_first_scan` removes those of models not listed)."""
        version, _, prefix = folder.name.partition("-")
        if not version.isdigit() or len(prefix) != FINGERPRINT_PREFIX or not folder.is_dir():
            return False
        left = _Left(int(version), prefix, folder, folder.stat().st_mtime_ns)
        with self._lock:
            self._left.setdefault(folder.parent.name, []).append(left)
        return True

    def after_first_scan(self) -> None:
        """The folders left by a previous run that no listing adopted (their model is gone): removed."""
        with self._lock:
            left, self._left = self._left, {}
        for folders in left.values():
            for item in folders:
                self._store.remove(item.path)

    def remember_order(self) -> None:
        """At stop: the folders of the entries in memory get mtimes in their LRU order, after every
        folder that left memory, so the next run adopts them in the order of their last use."""
        used = self.views.last_used()
        entries = sorted(used, key=used.__getitem__)
        paths = [
            self._registry.loaded(model)[version].path
            for model, version in entries
            if version in self._registry.loaded(model)
        ]
        self._stamp_folders(paths)

    def _adopt(self, model: str, state: ModelState) -> None:
        with self._lock:
            left = self._left.pop(model, [])
            adopted, stale = [], []
            for item in left:
                entry = state.versions.get(item.version)
                matches = entry is not None and entry.listing.incomplete is None
                if matches and entry is not None and entry.fingerprint.startswith(item.fingerprint_prefix):
                    self._folders[item.path] = _Folder(model, item.version, entry.fingerprint)
                    self._folder_used[item.path] = item.last_use - _BEFORE_THIS_RUN
                    self._ever_cached.add(model)
                    adopted.append(item.path)
                else:
                    stale.append(item.path)
            retiring = self._over_disk_size(set()) if adopted else []
        for path in stale:
            self._store.remove(path)
        if adopted:
            log.info("adopted %d folder(s) of %s left on disk by the previous run", len(adopted), model)
        self._evict_from_disk(retiring)

    def _stamp_folders(self, paths: list[Path]) -> None:
        """Set the folders' mtimes to now, strictly increasing in the order given (outside the lock)."""
        for path in paths:
            self._last_mtime = stamp = max(time.time_ns(), self._last_mtime + 1)
            with contextlib.suppress(OSError):  # removed meanwhile
                os.utime(path, ns=(stamp, stamp))

    # -- views (any thread) ------------------------------------------------------------------
    def on_disk(self) -> dict[str, set[int]]:
        """Per model, the versions whose folder is on disk (one pass, for all of `/models`)."""
        found: dict[str, set[int]] = {}
        with self._lock:
            for folder in self._folders.values():
                found.setdefault(folder.model, set()).add(folder.version)
        return found

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "memory": len(self._resident_keys()),
                "disk": len(self._folders),
                "loading": len(self._loading),
                "retiring": len(self._retiring),
            }

    # -- inside the lock -----------------------------------------------------------------------
    def _resident_keys(self) -> set[Entry]:
        return {(model, version) for model in self._registry.models() for version in self._registry.loaded(model)}

    def _forget_folder(self, path: Path) -> None:
        self._folders.pop(path, None)
        self._folder_used.pop(path, None)

    def _gauges(self) -> None:
        self._in_memory_gauge.set(len(self._resident_keys()))
        self._on_disk_gauge.set(len(self._folders))
        self._retiring_gauge.set(len(self._retiring))

    def _retire(self, path: Path, folder: _Folder | None) -> None:
        """Outside the lock: the store may remove the folder right here (retire_after 0). At most
        `sizes.disk` folders retire at once: past that the oldest retiring one goes now, having had the
        longest time for the requests that read it to finish."""
        if folder is None:
            self._store.retire(path)
            return
        with self._lock:
            self._retiring[path] = (folder, None)
            self._gauges()
        pending = self._store.retire(path, on_removed=lambda: self._removed(path))
        early: list[Path] = []
        with self._lock:
            if pending is not None and path in self._retiring:
                self._retiring[path] = (folder, pending)
            excess = len(self._retiring) - self.sizes.disk
            for oldest, (_, scheduled) in list(self._retiring.items()):  # in the order they began retiring
                if excess <= 0:
                    break
                if scheduled is not None:
                    scheduled.cancel()
                    del self._retiring[oldest]
                    early.append(oldest)
                    excess -= 1
            self._gauges()
        for oldest in early:
            log.info("removing %s before retire_after: at most %d folders retire at once", oldest, self.sizes.disk)
            self._store.remove(oldest)
            self._metrics.cache_evictions.labels("retiring").inc()

    def _removed(self, path: Path) -> None:
        with self._lock:
            self._retiring.pop(path, None)
            self._gauges()


def _nothing_taken_over(model: str) -> Mapping[int, str]:
    return {}
