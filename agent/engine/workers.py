"""One model at a time per model, many models in parallel.

`request(model)` asks for a reconcile of one model and returns a future that completes when
a reconcile that started after the request has finished. Requests for a model that arrive
while its reconcile is queued coalesce into it; requests arriving while it runs are served by
one more run after it. Different models run on a shared pool and never wait for each other.
`at(when, model)` requests a reconcile later (settle windows, retry backoff), through the
scheduler. A running reconcile may take over the requests that only ask for versions (`absorb`):
with caching, a cold request for version 2 while version 1 loads then loads beside it instead of
waiting for the next run; the running reconcile completes their futures with its result.
The pool is injected (s3transfer's pattern), so a test can run work on its own terms.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from agent.domain.requests import Request, merge
from agent.engine.scheduler import Scheduler
from agent.logs import model_logger

log = logging.getLogger(__name__)

Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Result]):
    requests: list[Request] = field(default_factory=list)
    futures: list[Future[Result]] = field(default_factory=list)


class ModelWorkers(Generic[Result]):
    def __init__(
        self,
        work: Callable[[str, Request], Result],
        scheduler: Scheduler,
        max_workers: int = 8,
        pool: Executor | None = None,
    ) -> None:
        self._work = work
        self._scheduler = scheduler
        self._max_workers = max_workers
        self._pool = pool or ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="reconcile")
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending[Result]] = {}
        self._running: set[str] = set()
        self._batches: dict[str, _Pending[Result]] = {}  # the requests each running reconcile answers
        self._stopped = False
        # Told when a request that only asks for versions waits behind a running reconcile (absorb it).
        self.on_demand: Callable[[str], None] = _nothing

    def request(self, model: str, request: Request | None = None) -> Future[Result]:
        future: Future[Result] = Future()
        with self._lock:
            if self._stopped:
                future.cancel()
                return future
            pending = self._pending.setdefault(model, _Pending())
            pending.requests.append(request or Request())
            pending.futures.append(future)
            start = model not in self._running
            self._running.add(model)
        if start:  # outside the lock: a serial pool (tests) runs the work right here
            self._pool.submit(self._drain, model)
        elif request is not None and request.demand_only:
            self.on_demand(model)
        return future

    def request_many(self, requests: Sequence[tuple[str, Request]]) -> list[Future[Result]]:
        """`request` for many models at once (a scan's page): one lock, and the models to start are handed
        to the pool in chunks, each drained in turn on one thread (a pool task per model cost more CPU than
        a reconcile with nothing to load). Chunks are small enough (4 per worker) to keep the pool busy."""
        futures: list[Future[Result]] = []
        starting: list[str] = []
        with self._lock:
            for model, request in requests:
                future: Future[Result] = Future()
                futures.append(future)
                if self._stopped:
                    future.cancel()
                    continue
                pending = self._pending.setdefault(model, _Pending())
                pending.requests.append(request)
                pending.futures.append(future)
                if model not in self._running:
                    self._running.add(model)
                    starting.append(model)
        size = max(1, -(-len(starting) // (4 * self._max_workers)))
        for first in range(0, len(starting), size):  # outside the lock, as in `request`
            self._pool.submit(self._drain_each, starting[first : first + size])
        return futures

    def _drain_each(self, models: list[str]) -> None:
        for model in models:
            self._drain(model)

    def absorb(self, model: str) -> frozenset[int]:
        """Called by the model's running reconcile: take the queued requests that only ask for versions
        into it (their futures get its result); return the versions they ask for."""
        with self._lock:
            pending = self._pending.get(model)
            batch = self._batches.get(model)
            if pending is None or batch is None:
                return frozenset()
            taken = [(r, f) for r, f in zip(pending.requests, pending.futures, strict=True) if r.demand_only]
            if not taken:
                return frozenset()
            kept = [(r, f) for r, f in zip(pending.requests, pending.futures, strict=True) if not r.demand_only]
            if kept:
                pending.requests, pending.futures = [r for r, _ in kept], [f for _, f in kept]
            else:
                del self._pending[model]
            batch.futures.extend(f for _, f in taken)
        return frozenset().union(*(request.demand for request, _ in taken))

    def at(self, when: float, model: str) -> None:
        """Reconcile `model` at the scheduler's time `when` (seconds since the epoch)."""
        self._scheduler.call_at(when, lambda: self._later(model))

    def _later(self, model: str) -> None:
        self.request(model)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
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
                self._batches[model] = pending
            try:
                result = self._work(model, merge(pending.requests))
            except BaseException as error:  # the work reports its own errors; this is a bug
                model_logger(log, model).exception("reconcile of %s crashed", model)
                for future in self._answered(model):
                    future.set_exception(error)
            else:
                for future in self._answered(model):
                    future.set_result(result)

    def _answered(self, model: str) -> list[Future[Result]]:
        """The futures the reconcile that just ended answers: its own and those it absorbed."""
        with self._lock:
            batch = self._batches.pop(model)
            return list(batch.futures)


def _nothing(model: str) -> None:
    pass
