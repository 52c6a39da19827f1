"""Two small tools every long-running part of the agent uses: a repeating daemon thread, and a
log that speaks once per change of state rather than once per retry."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Repeat:
    """Call `work()` in a daemon thread every `interval()` seconds until stopped.

    `immediately`: the first call is at start, else after one interval. An exception in `work`
    is logged and the next call comes at the next interval: nothing here ends the process.
    """

    def __init__(
        self, name: str, work: Callable[[], None], interval: Callable[[], float], immediately: bool = False
    ) -> None:
        self._work = work
        self._interval = interval
        self._immediately = immediately
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        if not self._immediately and self._stop.wait(self._interval()):
            return
        while not self._stop.is_set():
            try:
                self._work()
            except Exception:
                log.exception("%s crashed; it runs again at the next interval", self._thread.name)
            if self._stop.wait(self._interval()):
                return


class StateLog:
    """Log `failing: <error>` when a state turns bad or its error changes, and `recovered` once when it
    turns good again; repeated reports of the same state say nothing."""

    def __init__(self, log: logging.Logger, failing: str, recovered: str, extra: dict[str, Any] | None = None) -> None:
        self._log = log
        self._failing = failing
        self._recovered = recovered
        self._extra = extra
        self.error: str | None = None

    def __call__(self, error: str | None) -> None:
        if error == self.error:
            return
        if error:
            self._log.warning(self._failing, error, extra=self._extra)
        elif self.error:
            self._log.info(self._recovered, extra=self._extra)
        self.error = error
