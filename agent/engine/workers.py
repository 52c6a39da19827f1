"""One model at a time per model, many models in parallel.

`request(model)` asks for a reconcile of one model and returns a future that completes when
a reconcile that started after the request has finished. Requests for a model that arrive
while its reconcile is queued coalesce into it; requests arriving while it runs are served by
one more run after it. Different models run on a shared pool and never wait for each other.
`at(when, model)` requests a reconcile later (settle windows, retry backoff).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from agent.domain.versions import ObjectInfo

log = logging.getLogger(__name__)

Result = TypeVar("Result")


@dataclass(frozen=True)
class Request:
    """Why a model is reconciled: its objects when a scan already listed them, an event's time."""

    objects: Sequence[ObjectInfo] | None = None
    event_time: float | None = None
    from_scan: bool = False
    keys: frozenset[str] | None = None  # the changed keys (relative to the model) an event named; None: look


@dataclass
class _Pending(Generic[Result]):
    requests: list[Request] = field(default_factory=list)
    futures: list[Future[Result]] = field(default_factory=list)


def merge(requests: Sequence[Request]) -> Request:
    """One request that serves all: re-list unless every one brought a listing; earliest event time."""
    objects = requests[-1].objects if all(r.objects is not None for r in requests) else None
    times = [r.event_time for r in requests if r.event_time is not None]
    keys = None
    if all(r.keys is not None for r in requests):
        keys = frozenset().union(*(r.keys for r in requests if r.keys is not None))
    return Request(objects, min(times, default=None), all(r.from_scan for r in requests), keys)


class ModelWorkers(Generic[Result]):
    def __init__(self, work: Callable[[str, Request], Result], max_workers: int = 8) -> None:
        self._work = work
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="reconcile")
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending[Result]] = {}
        self._running: set[str] = set()
        self._timers: list[tuple[float, str]] = []
        self._timer_wakeup = threading.Condition(self._lock)
        self._stopped = False
        self._timer_thread = threading.Thread(target=self._run_timers, name="reconcile-timers", daemon=True)
        self._timer_thread.start()

    def request(self, model: str, request: Request | None = None) -> Future[Result]:
        future: Future[Result] = Future()
        with self._lock:
            if self._stopped:
                future.cancel()
                return future
            pending = self._pending.setdefault(model, _Pending())
            pending.requests.append(request or Request())
            pending.futures.append(future)
            if model not in self._running:
                self._running.add(model)
                self._pool.submit(self._drain, model)
        return future

    def at(self, when: float, model: str) -> None:
        """Reconcile `model` at wall-clock time `when` (seconds since the epoch)."""
        with self._lock:
            heapq.heappush(self._timers, (when, model))
            self._timer_wakeup.notify()

    def busy(self) -> bool:
        with self._lock:
            return bool(self._running)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._timer_wakeup.notify()
            for pending in self._pending.values():
                for future in pending.futures:
                    future.cancel()
            self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _drain(self, model: str) -> None:
        while True:
            with self._lock:
                pending = self._pending.pop(model, None)
                if pending is None or self._stopped:
                    self._running.discard(model)
                    return
            try:
                result = self._work(model, merge(pending.requests))
            except BaseException as error:  # the work reports its own errors; this is a bug
                log.exception("reconcile of %s crashed", model, extra={"model": model})
                for future in pending.futures:
                    future.set_exception(error)
            else:
                for future in pending.futures:
                    future.set_result(result)

    def _run_timers(self) -> None:
        with self._lock:
            while not self._stopped:
                if not self._timers:
                    self._timer_wakeup.wait()
                    continue
                when, model = self._timers[0]
                delay = when - time.time()
                if delay > 0:
                    self._timer_wakeup.wait(timeout=min(delay, 60.0))
                    continue
                heapq.heappop(self._timers)
                self._lock.release()
                try:
                    self.request(model)
                finally:
                    self._lock.acquire()
