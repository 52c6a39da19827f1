"""The TensorFlow handler's loader: TF Serving serves the versions, the agent owns its model config.

`load` adds a downloaded internal version to the desired config, sends the complete config
(every model: TF Serving unloads what it omits) and waits until GetModelStatus says AVAILABLE,
or END with an error (a failed version). `unload` drops a version, sends, and waits until TF
Serving reports it unloaded, so the reconciler may then delete its folder. Workers load
different models in parallel, so config calls are serialised by one lock and each carries the
whole desired state. A watchdog sends the config again when TF Serving no longer serves what it
had loaded (it restarted) or when a change could not be sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from agent.domain.errors import PermanentError, ReloaderError, ReloadUnconfirmedError, TemporaryError
from agent.domain.routing import ModelSet
from agent.domain.settings import ReloadingSettings
from agent.domain.tfserving import (
    ModelEntry,
    Servable,
    VersionState,
    choose_signature,
    is_unloaded,
    load_progress,
    lost_versions,
    model_config,
)
from agent.engine.background import Repeat, StateLog
from agent.metrics import Metrics

log = logging.getLogger(__name__)

FIRST_POLL = 0.02  # seconds before the first status poll; doubled up to LAST_POLL
LAST_POLL = 0.5


class TFServingAPI(Protocol):
    """What the loader needs of TF Serving (agent.boundaries.tfserving.TFServing, or a test's fake)."""

    def reload_config(self, entries: Sequence[ModelEntry]) -> None: ...

    def model_status(self, model: str) -> dict[int, VersionState]: ...

    def signatures(self, model: str, version: int) -> dict[str, dict[str, int]]: ...


class TFServingLoader:
    def __init__(
        self,
        tfserving: TFServingAPI,
        models: ModelSet,
        base_dir: str,
        settings: ReloadingSettings,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tfserving = tfserving
        self._models = models
        self._base_dir = base_dir.rstrip("/")
        self._settings = settings
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._lock = threading.Lock()  # serialises config calls and guards the sets below
        self._desired: dict[str, set[int]] = {}  # internal versions TF Serving should serve, per model
        self._confirmed: dict[str, set[int]] = {}  # those it reported AVAILABLE
        self._unsent = False  # the last config change did not reach TF Serving
        self._stop = threading.Event()  # set by stop(): loads being awaited give up
        self._watchdog = Repeat("tfserving-watchdog", self._watch, lambda: settings.tfserving_watch_interval)
        self._reachability = StateLog(log, "TF Serving does not answer: %s", "TF Serving answers again")

    def start(self) -> None:
        self._watchdog.start()

    def stop(self) -> None:
        self._stop.set()
        self._watchdog.stop()

    # -- Loader ----------------------------------------------------------------------------
    def load(self, model: str, version: int, path: Path) -> Servable:
        internal = int(path.name)
        where = f"model {model!r} version {version} (TF Serving version {internal})"
        started = self._clock()
        self._add(model, internal)
        try:
            states = self._await(model, lambda states: load_progress(states, internal)[0] != "pending", "loaded")
            progress, error = load_progress(states, internal)
            if progress == "failed":
                raise PermanentError(f"TF Serving could not load {where}: {error}")
            signatures = self._tfserving.signatures(model, internal)
            source = self._models.source(model)
            key = choose_signature(signatures, source.signature_key if source else None, where)
        except BaseException:
            self._withdraw(model, internal)
            raise
        with self._lock:
            self._confirmed.setdefault(model, set()).add(internal)
        log.info(
            "TF Serving: %s AVAILABLE after %.3f s (signature %r)",
            where,
            self._clock() - started,
            key,
            extra={"model": model, "version": version},
        )
        return Servable(model, version, internal, key, signatures[key])

    def unload(self, model: str, version: int, value: Servable) -> None:
        internal = value.internal_version
        self._withdraw(model, internal)
        try:
            self._await(model, lambda states: is_unloaded(states, internal), "unloaded")
        except ReloaderError as error:
            log.warning(
                "TF Serving did not confirm that it unloaded version %s: %s; its folder goes anyway",
                internal,
                error,
                extra={"model": model, "version": version},
            )

    # -- the config ------------------------------------------------------------------------
    def _add(self, model: str, internal: int) -> None:
        with self._lock:
            self._desired.setdefault(model, set()).add(internal)
            try:
                self._send()
            except ReloadUnconfirmedError as error:
                log.warning("%s; the version states will tell", error, extra={"model": model})
            except ReloaderError:
                self._forget(model, internal)
                raise

    def _withdraw(self, model: str, internal: int) -> None:
        """Take a version out of the config and send it; a failure is left to the watchdog."""
        with self._lock:
            self._forget(model, internal)
            try:
                self._send()
            except ReloaderError as error:
                log.warning(
                    "TF Serving did not take the config without version %s: %s", internal, error, extra={"model": model}
                )

    def _forget(self, model: str, internal: int) -> None:
        for versions in (self._desired, self._confirmed):
            versions.get(model, set()).discard(internal)
            if not versions.get(model, True):
                del versions[model]

    def _send(self) -> None:
        """Send the complete desired config. Call with the lock held."""
        self._unsent = True
        self._tfserving.reload_config(model_config(self._desired, self._base_path))
        self._unsent = False

    def _base_path(self, model: str) -> str:
        return f"{self._base_dir}/{model}"

    def _await(self, model: str, done: Callable[[dict[int, VersionState]], bool], what: str) -> dict[int, VersionState]:
        """Poll the model's version states until `done` holds; TemporaryError after the load timeout."""
        deadline = self._clock() + self._settings.tfserving_load_timeout
        interval = FIRST_POLL
        while True:
            states = self._tfserving.model_status(model)
            if done(states):
                return states
            if self._clock() >= deadline:
                raise TemporaryError(
                    f"TF Serving: model {model!r} not {what} after {self._settings.tfserving_load_timeout} s"
                )
            if self._stop.wait(interval):
                raise TemporaryError(f"stopping while model {model!r} is being {what}")
            interval = min(interval * 2, LAST_POLL)

    # -- the watchdog ----------------------------------------------------------------------
    def check(self) -> bool:
        """Send the config again if TF Serving lost versions it had made AVAILABLE (it restarted) or
        missed the last change. Return whether it was sent."""
        with self._lock:
            confirmed = {model: set(versions) for model, versions in self._confirmed.items()}
            unsent = self._unsent
        lost: dict[str, list[int]] = {}
        for model, versions in sorted(confirmed.items()):
            missing = lost_versions(versions, self._tfserving.model_status(model))
            if missing:
                lost[model] = missing
                break  # one is enough: the whole config goes again
        if not lost and not unsent:
            return False
        why = f"it lost {lost}" if lost else "it missed the last config change"
        log.warning("TF Serving: %s; sending the whole config again", why)
        with self._lock:
            self._send()
        self._metrics.tfserving_resends.inc()
        return True

    def _watch(self) -> None:
        try:
            self.check()
        except ReloaderError as error:
            self._reachability(str(error))
        else:
            self._reachability(None)
