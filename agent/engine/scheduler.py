"""One clock and one scheduler for everything timed: scans, settle wake-ups, retry backoff, folder
retirement, heartbeats, the TF Serving watchdog and back-off after errors.

The clock is injected (`SystemClock` in production, a manual clock in tests), so time-based logic
is tested by moving the clock rather than by sleeping, as kopf's looptime does. The scheduler keeps
one heap and one thread; a due call runs on the injected executor, never on the scheduler's own
thread, so a slow call (a listing, an RPC) delays nothing else. A test can pass an executor that
runs calls inline and drive the scheduler with `run_due()`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Protocol

log = logging.getLogger(__name__)

MAX_WAIT = 60.0  # seconds: the scheduler looks at the real clock at least this often (clock jumps)


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""

    def wait(self, condition: threading.Condition, until: float | None) -> None:
        """Wait on `condition` (held by the caller) until notified, or until the clock reads `until`."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def wait(self, condition: threading.Condition, until: float | None) -> None:
        timeout = MAX_WAIT if until is None else min(max(0.0, until - time.time()), MAX_WAIT)
        condition.wait(timeout)


class Handle:
    """A scheduled call; `cancel()` keeps it from running (a repeating one stops repeating)."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    def __init__(self, clock: Clock | None = None, executor: Executor | None = None, workers: int = 4) -> None:
        self.clock: Clock = clock or SystemClock()
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=workers, thread_name_prefix="timed")
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Handle, Callable[[], None]]] = []
        self._order = itertools.count()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def now(self) -> float:
        return self.clock.now()

    # -- scheduling (any thread) -------------------------------------------------------------
    def call_at(self, when: float, call: Callable[[], None]) -> Handle:
        handle = Handle()
        with self._lock:
            heapq.heappush(self._heap, (when, next(self._order), handle, call))
            self._wakeup.notify()
        return handle

    def call_later(self, delay: float, call: Callable[[], None]) -> Handle:
        return self.call_at(self.clock.now() + delay, call)

    def every(self, interval: Callable[[], float], call: Callable[[], None], first: float | None = None) -> Handle:
        """Call `call()` after `first` seconds (default: one interval), then `interval()` seconds after
        each call ends, until the handle is cancelled. An exception is logged; the next call still comes."""
        handle = Handle()

        def run() -> None:
            if handle.cancelled:
                return
            try:
                call()
            except Exception:
                log.exception("%s crashed; it runs again at the next interval", getattr(call, "__qualname__", call))
            if not handle.cancelled:
                self._push(self.clock.now() + interval(), handle, run)

        self._push(self.clock.now() + (interval() if first is None else first), handle, run)
        return handle

    def sleep(self, delay: float, stopping: Stopping) -> bool:
        """Block the calling thread for `delay` seconds of the clock; True when stopping meanwhile.

        For the loops that must block (a long poll's back-off, a status poll inside a load)."""
        woken = threading.Event()

        def wake() -> None:
            woken.set()
            stopping.notify()

        handle = self.call_later(delay, wake)
        stopped = stopping.wait_for(woken.is_set)
        handle.cancel()
        return stopped

    # -- running ---------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._wakeup.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if self._own_executor:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def run_due(self) -> int:
        """Run every call that is due now, on the executor; return how many (tests drive the clock so)."""
        due = self._take_due()
        for call in due:
            self._submit(call)
        return len(due)

    def pending(self) -> int:
        with self._lock:
            return sum(1 for _, _, handle, _ in self._heap if not handle.cancelled)

    def _push(self, when: float, handle: Handle, call: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._heap, (when, next(self._order), handle, call))
            self._wakeup.notify()

    def _take_due(self) -> list[Callable[[], None]]:
        now = self.clock.now()
        due = []
        with self._lock:
            while self._heap and (self._heap[0][0] <= now or self._heap[0][2].cancelled):
                _, _, handle, call = heapq.heappop(self._heap)
                if not handle.cancelled:
                    due.append(call)
        return due

    def _submit(self, call: Callable[[], None]) -> None:
        try:
            self._executor.submit(_logged, call)
        except RuntimeError:  # the executor shut down: the process is stopping
            log.debug("not run, stopping: %s", call)

    def _run(self) -> None:
        while True:
            for call in self._take_due():
                self._submit(call)
            with self._lock:
                if self._stopped:
                    return
                if self._heap and self._heap[0][0] <= self.clock.now():
                    continue
                self.clock.wait(self._wakeup, self._heap[0][0] if self._heap else None)
                if self._stopped:
                    return


def _logged(call: Callable[[], None]) -> None:
    try:
        call()
    except Exception:
        log.exception("a scheduled call crashed: %s", getattr(call, "__qualname__", call))


class Stopping:
    """A stop flag that wakes every thread sleeping on it (`Scheduler.sleep`) the moment it is set."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._set = False

    def set(self) -> None:
        with self._condition:
            self._set = True
            self._condition.notify_all()

    def is_set(self) -> bool:
        return self._set

    def notify(self) -> None:
        with self._condition:
            self._condition.notify_all()

    def wait_for(self, woken: Callable[[], bool]) -> bool:
        """Wait until `woken()` or stopping; return whether stopping."""
        with self._condition:
            self._condition.wait_for(lambda: self._set or woken())
            return self._set
