"""Download a version's files as their events arrive, before its marker makes it complete.

An upload writes its files, then its marker (marker mode); only the marker's event makes the
version loadable, and the reconcile it starts lists the version and downloads it. The files'
own events arrive earlier, each naming one object with its size and ETag: each is fetched then,
pinned to that ETag, into a scratch folder beside the model's version folders
(`versions.early_downloads` decides which). When the marker's reconcile downloads the version,
every listed object with the same key and ETag is taken from here (waiting for one still on its
way) instead of being fetched again; any other is downloaded as usual. So the listing made when
the marker landed still decides what loads: an object replaced since its event has another ETag
and is fetched anew. For a large model most of the download is done by the time the marker lands.

What no load takes within KEEP_SECONDS (a version never completed, a file replaced or removed)
is deleted by the scheduler; a restart's store cleaning removes scratch folders left by a crash.
Only S3 locations are fetched early. Threads: the downloads run on this module's own small pool
("early-get"); `start` is called by the model's worker, `fill` by whichever thread loads.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from agent.boundaries.s3 import safe_path
from agent.boundaries.store import ModelStore
from agent.domain.errors import ReloaderError
from agent.domain.locations import Location, S3Location
from agent.domain.versions import ObjectInfo
from agent.engine.scheduler import Scheduler
from agent.logs import model_logger
from agent.metrics import Metrics

log = logging.getLogger(__name__)

KEEP_SECONDS = 600.0  # an early download no load has taken by then is deleted
CONCURRENCY = 4  # early downloads at once (each large object is itself parallel, through s3transfer)

# download(location, objects, destination): ModelObjects.download
Download = Callable[[Location, Sequence[ObjectInfo], Path], None]


@dataclass
class _Early:
    model: str
    etag: str
    folder: Path  # the scratch folder holding the one file
    file: Path
    done: Future[bool]  # True when the file is complete; always completed, whatever happens
    task: Future[None] | None = None  # the pool's task: cancelled by a load that comes before it starts


class EarlyDownloads:
    def __init__(
        self,
        download: Download,
        store: ModelStore,
        scheduler: Scheduler,
        metrics: Metrics,
        pool: Executor | None = None,
    ) -> None:
        """`pool` runs the downloads (default: a pool of CONCURRENCY threads, made on first use)."""
        self._download = download
        self._store = store
        self._scheduler = scheduler
        self._metrics = metrics.early_downloads
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Early] = {}  # (bucket, key) -> the download of its latest ETag
        self._pool = pool
        self._stopped = False

    def start(self, model: str, location: Location, objects: Sequence[ObjectInfo]) -> None:
        """Fetch `objects` (keys relative to the model's `location`) unless already fetched or on the way."""
        if not isinstance(location, S3Location):
            return
        for obj in objects:
            key = location.key_prefix + obj.key
            entry_key = (location.bucket, key)
            with self._lock:
                replaced = self._entries.get(entry_key)
                if self._stopped or (replaced is not None and replaced.etag == obj.etag):
                    continue  # the same content is on its way (a duplicate event)
                folder = self._store.scratch(model)
                name = obj.key.rsplit("/", 1)[-1]
                entry = _Early(model, obj.etag, folder, folder / name, Future())
                self._entries[entry_key] = entry
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="early-get")
                pool = self._pool
            if replaced is not None:  # the object was written again: its earlier content is of no use
                self._discard(replaced)
            parent = S3Location(location.bucket, key.rsplit("/", 1)[0] if "/" in key else "")
            # The keep time runs from the download's end: a file whose own download is long is kept as long.
            entry.done.add_done_callback(partial(self._keep_until_expiry, entry_key, entry))
            try:
                entry.task = pool.submit(self._fetch, parent, ObjectInfo(name, obj.size, obj.etag), entry)
            except RuntimeError as error:  # the pool is shut down (stopping), or no thread can start
                model_logger(log, model).debug("early download of %s not started: %s", key, error)
                _complete(entry, ok=False)

    def _fetch(self, parent: Location, obj: ObjectInfo, entry: _Early) -> None:
        ok = False
        try:
            entry.folder.mkdir(parents=True, exist_ok=True)
            self._download(parent, [obj], entry.folder)
            ok = True
        except (ReloaderError, OSError) as error:
            model_logger(log, entry.model).debug("early download of %s/%s failed: %s", parent, obj.key, error)
        except Exception:  # a bug, or an error the S3 boundary does not translate: the load fetches it again
            model_logger(log, entry.model).exception("early download of %s/%s failed", parent, obj.key)
        finally:
            self._metrics.labels("downloaded" if ok else "failed").inc()
            _complete(entry, ok)

    def _keep_until_expiry(self, entry_key: tuple[str, str], entry: _Early, _: Future[bool]) -> None:
        self._scheduler.call_later(KEEP_SECONDS, partial(self._expire, entry_key, entry))

    def fill(self, location: Location, objects: Sequence[ObjectInfo], into: Path) -> None:
        """Put `objects` (keys relative to `location`, a version's) into `into`: those fetched early with
        the same ETag are moved there, every other one is downloaded. One whose early download has not
        started yet (queued behind others, maybe another model's) is downloaded here instead."""
        taken: list[tuple[ObjectInfo, _Early]] = []
        rest = list(objects)
        if isinstance(location, S3Location) and self._entries:
            rest = []
            with self._lock:
                for obj in objects:
                    entry_key = (location.bucket, location.key_prefix + obj.key)
                    entry = self._entries.get(entry_key)
                    if entry is None or entry.etag != obj.etag:  # none, or of content the listing no longer has
                        rest.append(obj)
                        continue
                    del self._entries[entry_key]
                    if entry.task is not None and entry.task.cancel():  # not started: fetched with the rest
                        _complete(entry, ok=False)
                        rest.append(obj)
                    else:
                        taken.append((obj, entry))
        try:
            if rest:
                self._download(location, rest, into)
            for obj, entry in taken:
                if entry.done.result():  # waits for one still on its way
                    target = safe_path(into, obj.key)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(entry.file, target)
                    self._metrics.labels("used").inc()
                else:
                    self._download(location, [obj], into)
        finally:
            for _, entry in taken:
                entry.done.add_done_callback(partial(_remove, entry.folder))

    def _expire(self, entry_key: tuple[str, str], entry: _Early) -> None:
        with self._lock:
            if self._entries.get(entry_key) is not entry:
                return  # taken by a load, or replaced (and discarded) meanwhile
            del self._entries[entry_key]
        self._discard(entry)

    def _discard(self, entry: _Early) -> None:
        def remove(done: Future[bool]) -> None:
            if done.result():
                self._metrics.labels("unused").inc()
            shutil.rmtree(entry.folder, ignore_errors=True)

        entry.done.add_done_callback(remove)

    def stop(self) -> None:
        """Stop fetching: cancel the downloads not started, leave those in flight to end on their own (a
        multi-gigabyte one must not hold up the shutdown), and delete what no load took. Called after
        the model workers have stopped, so no `fill` is waiting."""
        with self._lock:
            self._stopped = True
            entries, self._entries = list(self._entries.values()), {}
            pool = self._pool
        for entry in entries:
            if entry.task is not None and entry.task.cancel():
                _complete(entry, ok=False)
            self._discard(entry)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _complete(entry: _Early, ok: bool) -> None:
    if not entry.done.done():
        entry.done.set_result(ok)


def _remove(folder: Path, _: Future[bool]) -> None:
    shutil.rmtree(folder, ignore_errors=True)
