"""Graceful shutdown with a deadline: readiness off at SIGTERM, an optional drain, then a bounded stop.

Kubernetes sends SIGTERM and kills the pod `terminationGracePeriodSeconds` later. From SIGTERM on,
`/readyz` answers 503 (and `reloader_ready` is 0); the server keeps serving for `shutdown_drain`
seconds, then stops accepting, lets requests in flight finish and stops the agent, all within
`shutdown_timeout` seconds. Work still running then (a large download, a slow `load_model`) is
abandoned: its temporary folder is cleaned at the next start, and its message, never deleted,
comes back to another replica.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

log = logging.getLogger("reloader")


class Shutdown:
    """When shutdown began and how long is left; `stop_within` runs a stop against the deadline."""

    def __init__(self, drain: float, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.drain = drain
        self.timeout = timeout
        self._clock = clock
        self._begun_at: float | None = None
        self.abandoned = False  # a stop overran the deadline: its threads may still run

    @property
    def begun(self) -> bool:
        return self._begun_at is not None

    def begin(self) -> None:
        if self._begun_at is None:
            self._begun_at = self._clock()

    def drained(self) -> bool:
        return self._begun_at is not None and self._clock() >= self._begun_at + self.drain

    def remaining(self) -> float:
        """Seconds left before the process must be gone (the whole timeout while no signal came)."""
        if self._begun_at is None:
            return self.timeout
        return max(0.0, self._begun_at + self.drain + self.timeout - self._clock())

    def stop_within(self, stop: Callable[[], None]) -> bool:
        """Run `stop` until it returns or the deadline passes; False (and `abandoned`) when it overran."""
        thread = threading.Thread(target=stop, name="shutdown", daemon=True)
        thread.start()
        thread.join(self.remaining())
        if thread.is_alive():
            self.abandoned = True
            log.warning(
                "shutdown_timeout (%.0f s) passed with work still in flight: exiting without it "
                "(an unfinished download is cleaned at the next start)",
                self.timeout,
            )
            return False
        return True


class GracefulServer(uvicorn.Server):
    """uvicorn's server, told of SIGTERM/SIGINT by `Shutdown`: unready at once, closing after the drain.

    A second signal during the drain stops at once, as uvicorn does without one.
    """

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown) -> None:
        super().__init__(config)
        self.graceful = shutdown
        self._draining_signal: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self.graceful.begun
        self.graceful.begin()
        if first:
            log.info(
                "%s: not ready any more; serving for %.0f s more, then stopping within %.0f s",
                signal.Signals(sig).name,
                self.graceful.drain,
                self.graceful.timeout,
            )
        if first and self.graceful.drain > 0:
            self._draining_signal = sig
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._draining_signal is not None and self.graceful.drained():
            sig, self._draining_signal = self._draining_signal, None
            super().handle_exit(sig, None)
        return await super().on_tick(counter)
