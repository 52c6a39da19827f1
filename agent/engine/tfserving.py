"""The TensorFlow handler's loader: TF Serving serves the versions, the agent owns its model config.

`load` adds a downloaded internal version to the desired config, sends the complete config
(every model: TF Serving unloads what it omits) and waits until GetModelStatus says AVAILABLE,
or END with an error (a failed version). `unload` drops a version, sends, and waits until TF
Serving reports it unloaded, so the reconciler may then delete its folder.

Plan, then act: the desired internal versions and what TF Serving reports are plain values; what
to send, and whether TF Serving drifted from it, are pure functions (agent.domain.tfserving). Model
workers load different models in parallel, and `HandleReloadConfigRequest` replaces the whole
config, so there is one sender: each config is taken with a generation number under the state lock
(never held across an RPC), and a config is never sent after a newer one went. A call that adds
a model new to TF Serving has a deadline covering the load timeout, as TF Serving answers it only
once the model loaded (and keeps applying a call whose caller gave up). A watchdog compares what
TF Serving serves with the config and sends it again when they differ: TF Serving restarted,
missed a change, or applied a late call.

A folder is removed only once TF Serving reports its version unloaded (`in_use`, `ModelStore.sweep`).
An agent restart leaves TF Serving serving: `before_first_scan` takes over the folders it serves,
so the first config names them all, and `after_first_scan` drops those the first scan did not claim.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from agent.boundaries.store import ModelStore
from agent.domain.errors import PermanentError, ReloaderError, ReloadUnconfirmedError, TemporaryError
from agent.domain.routing import ModelSet
from agent.domain.settings import ReloadingSettings
from agent.domain.tfserving import (
    LIVE_STATES,
    ModelEntry,
    Servable,
    VersionState,
    choose_signature,
    config_drift,
    config_to_send,
    is_unloaded,
    load_progress,
    model_config,
)
from agent.engine.scheduler import Handle, Scheduler, Stopping
from agent.engine.state_log import StateLog
from agent.logs import model_logger
from agent.metrics import Metrics

log = logging.getLogger(__name__)

FIRST_POLL = 0.02  # seconds before the first status poll; doubled up to LAST_POLL
LAST_POLL = 0.5
RESUME_MARGIN = 1.0  # seconds beyond the settle window that versions taken over at start may take to be claimed


class TFServingAPI(Protocol):
    """What the loader needs of TF Serving (agent.boundaries.tfserving.TFServing, or a test's fake)."""

    def reload_config(self, entries: Sequence[ModelEntry], timeout: float | None = None) -> None: ...

    def model_status(self, model: str) -> dict[int, VersionState]: ...

    def signatures(self, model: str, version: int) -> dict[str, dict[str, int]]: ...


Key = tuple[str, int]  # (model, internal version)


class TFServingLoader:
    def __init__(
        self,
        tfserving: TFServingAPI,
        models: ModelSet,
        base_dir: str,
        settings: ReloadingSettings,
        scheduler: Scheduler,
        metrics: Metrics | None = None,
        store: ModelStore | None = None,
    ) -> None:
        self._tfserving = tfserving
        self._models = models
        self._base_dir = base_dir.rstrip("/")
        self._settings = settings
        self._metrics = metrics or Metrics()
        self._scheduler = scheduler
        self._clock = scheduler.now
        self._store = store
        self._sending = threading.Lock()  # the one sender: held across a config call, and only there
        self._lock = threading.Lock()  # guards the values below, never held across a call
        self._desired: dict[str, set[int]] = {}  # internal versions TF Serving should serve, per model
        self._confirmed: dict[str, set[int]] = {}  # those it reported AVAILABLE
        self._leaving: dict[Key, float] = {}  # dropped from the config, not yet seen unloaded: when dropped
        self._adopted: dict[Key, Path] = {}  # taken over at start, not yet claimed by a load
        self._taken_over: dict[str, dict[int, str]] = {}  # the same, as model -> version -> fingerprint
        self._sent: tuple[ModelEntry, ...] | None = None  # the config TF Serving last took; None: unknown
        self._missed = False  # the last config call failed: TF Serving may not have the config
        self._generation = 0  # of the newest config taken for sending
        self._sent_generation = 0  # of the newest config sent
        self._stop = Stopping()  # set by stop(): loads being awaited give up
        self._watchdog: Handle | None = None
        self._reachability = StateLog(log, "TF Serving does not answer: %s", "TF Serving answers again")

    def start(self) -> None:
        self._watchdog = self._scheduler.every(lambda: self._settings.tfserving_watch_interval, self._watch)

    def stop(self) -> None:
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.cancel()

    def describe(self, value: Any) -> dict[str, Any]:
        """Clients that call TF Serving directly name this version."""
        return {"tfserving_version": value.internal_version} if isinstance(value, Servable) else {}

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
        model_logger(log, model, version).info(
            "TF Serving: %s AVAILABLE after %.3f s (signature %r)", where, self._clock() - started, key
        )
        return Servable(model, version, internal, key, signatures[key])

    def unload(self, model: str, version: int, value: Servable) -> None:
        internal = value.internal_version
        self._withdraw(model, internal)
        try:  # not for long: the folder stays until TF Serving reports it unloaded, whenever that is
            self._await(model, partial(_unloaded, internal), "unloaded", self._settings.tfserving_rpc_timeout)
        except ReloaderError as error:
            model_logger(log, model, version).warning(
                "TF Serving did not confirm that it unloaded version %s: %s; its folder stays until it does",
                internal,
                error,
            )
        else:
            with self._lock:
                self._leaving.pop((model, internal), None)

    def in_use(self, folder: Path) -> bool:
        """Whether TF Serving may still read `folder` (`<model>/<internal>`): the store keeps it until not."""
        if not folder.name.isdigit():
            return False
        model, internal = folder.parent.name, int(folder.name)
        with self._lock:
            return (model, internal) in self._leaving or internal in self._desired.get(model, ())

    # -- an agent restart --------------------------------------------------------------------
    def before_first_scan(self) -> None:
        """Before the first scan: take over the folders a previous run left that TF Serving still serves
        (or loads), so that the first config keeps them; remove the others."""
        if self._store is None:
            return
        stored = [item for item in self._store.recorded() if item.folder.name.isdigit()]
        adopted: dict[Key, Path] = {}
        taken_over: dict[str, dict[int, str]] = {}
        available: set[Key] = set()
        for model in sorted({item.model for item in stored}):
            try:
                states: dict[int, VersionState] | None = self._tfserving.model_status(model)
            except ReloaderError:
                states = None  # TF Serving does not answer: it gets the whole config when it does
            for item in stored:
                internal = int(item.folder.name)
                if item.model == model and (states is None or _live(states.get(internal))):
                    adopted[(model, internal)] = item.folder
                    taken_over.setdefault(model, {})[item.version] = item.fingerprint
                    if states is not None and states[internal].state == "AVAILABLE":
                        available.add((model, internal))
        kept = set(adopted.values())
        self._store.clean(keep=lambda folder: folder in kept)
        with self._lock:
            self._adopted = adopted
            self._taken_over = taken_over
            for model, internal in adopted:
                self._desired.setdefault(model, set()).add(internal)
            for model, internal in available:
                self._confirmed.setdefault(model, set()).add(internal)
        if adopted:
            log.info("TF Serving: taking over %d version folder(s) of a previous run", len(adopted))

    def keep(self, folders: Callable[[Path], bool]) -> None:
        """TF Serving's folders are taken over by `before_first_scan` (what TF Serving still serves)."""

    def after_first_scan(self) -> None:
        """After the first scan: drop the versions taken over that no load claimed (S3 changed meanwhile).

        A version uploaded just before the restart loads only after its settle window: the drop waits that long.
        """
        with self._lock:
            adopted = bool(self._adopted)
        if adopted:
            settle = 0.0 if self._settings.ready_marker else self._settings.settle
            self._scheduler.call_later(settle + RESUME_MARGIN, self._drop_unclaimed)

    def taken_over(self, model: str) -> dict[int, str]:
        """The versions of `model` taken over at start (-> fingerprint), until the first scan's drop: with
        caching the agent loads them eagerly (their folders are there, TF Serving serves them), so a
        restart keeps TF Serving's cache."""
        with self._lock:
            return dict(self._taken_over.get(model, {}))

    def _drop_unclaimed(self) -> None:
        with self._lock:
            self._taken_over = {}
            dropped, self._adopted = self._adopted, {}
            for model, internal in dropped:
                self._forget(model, internal)
        if not dropped:
            return
        log.info("TF Serving: dropping %d version(s) of a previous run that S3 no longer has", len(dropped))
        self._send_logged(f"without {len(dropped)} version(s) of a previous run")
        if self._store is not None:
            for folder in dropped.values():
                self._store.remove(folder)  # once TF Serving reports it unloaded

    # -- the config ------------------------------------------------------------------------
    def _add(self, model: str, internal: int) -> None:
        with self._lock:
            self._desired.setdefault(model, set()).add(internal)
            self._leaving.pop((model, internal), None)
            self._adopted.pop((model, internal), None)
        try:
            self._send()
        except ReloadUnconfirmedError as error:
            model_logger(log, model).warning("%s; the version states will tell", error)
        except ReloaderError:
            with self._lock:
                self._forget(model, internal)
            raise

    def _withdraw(self, model: str, internal: int) -> None:
        """Take a version out of the config and send it; a failure is left to the watchdog."""
        with self._lock:
            self._forget(model, internal)
        self._send_logged(f"without version {internal} of {model!r}")

    def _forget(self, model: str, internal: int) -> None:
        """Drop a version from the desired and confirmed sets. Call with the lock held."""
        if internal in self._desired.get(model, ()):
            self._leaving[(model, internal)] = self._clock()
        for versions in (self._desired, self._confirmed):
            versions.get(model, set()).discard(internal)
            if not versions.get(model, True):
                del versions[model]

    def _send(self, force: bool = False) -> None:
        """Send the complete desired config, unless TF Serving already took that very config (`force`:
        send it all the same, to a TF Serving that may have lost it: every model may be new to it).

        The config and its generation are taken under the state lock; the call is made under the
        sender's lock alone; a config older than one already sent is never sent."""
        with self._lock:
            self._generation += 1
            generation = self._generation
        with self._sending:
            with self._lock:
                if generation < self._generation and not force:
                    return  # a newer config is waiting for the sender: it carries this change too
                entries = model_config(self._desired, self._base_path)
                send = config_to_send(
                    entries,
                    self._sent,
                    force,
                    self._settings.tfserving_rpc_timeout,
                    self._settings.tfserving_load_timeout,
                )
                if send is None:
                    return
                self._sent, self._missed = None, True
            self._tfserving.reload_config(send.entries, timeout=send.timeout)
            with self._lock:
                self._sent, self._missed, self._sent_generation = send.entries, False, generation

    def _send_logged(self, what: str) -> None:
        try:
            self._send()
        except ReloaderError as error:
            log.warning("TF Serving did not take the config %s: %s", what, error)

    def _base_path(self, model: str) -> str:
        return f"{self._base_dir}/{model}"

    def _await(
        self,
        model: str,
        done: Callable[[dict[int, VersionState]], bool],
        what: str,
        timeout: float | None = None,
    ) -> dict[int, VersionState]:
        """Poll the model's version states until `done` holds; TemporaryError after `timeout` (default
        the load timeout). A status call that fails for a moment (TF Serving busy or restarting) is
        tried again until then.
        """
        timeout = self._settings.tfserving_load_timeout if timeout is None else timeout
        deadline = self._clock() + timeout
        interval = FIRST_POLL
        while True:
            last_error: TemporaryError | None = None
            try:
                states = self._tfserving.model_status(model)
                if done(states):
                    return states
            except TemporaryError as error:
                last_error = error
            if self._clock() >= deadline:
                raise TemporaryError(
                    f"TF Serving: model {model!r} not {what} after {timeout} s"
                    + (f" (last: {last_error})" if last_error else "")
                )
            if self._scheduler.sleep(interval, self._stop):
                raise TemporaryError(f"stopping while model {model!r} is being {what}")
            interval = min(interval * 2, LAST_POLL)

    # -- the watchdog ----------------------------------------------------------------------
    def check(self) -> bool:
        """Send the config again if what TF Serving serves differs from it: versions it lost (it
        restarted), versions it serves that the config omits (a late call), or a change it missed.
        Return whether it was sent. No lock is held across the status calls: a drift is looked at
        twice (a load or unload may have changed the config in between), and what is sent is the
        config as it is at the moment of sending."""
        if self._drift() is None:
            self._note_unloaded()
            return False
        why = self._drift()
        if why is None:
            return False
        log.warning("TF Serving: %s; sending the whole config again", why)
        self._send(force=True)
        self._metrics.tfserving_resends.inc()
        return True

    def _drift(self) -> str | None:
        """Why TF Serving's versions differ from the config, or None when they agree."""
        with self._lock:
            desired = {model: frozenset(versions) for model, versions in self._desired.items()}
            confirmed = {model: frozenset(versions) for model, versions in self._confirmed.items()}
            grace = self._clock() - self._settings.tfserving_load_timeout
            leaving = {key for key, since in self._leaving.items() if since > grace}
            missed = self._missed
        if missed:
            return "it missed the last config change"
        models = sorted(set(desired) | set(confirmed) | {model for model, _ in leaving})
        reported = {model: self._tfserving.model_status(model) for model in models}
        return config_drift(desired, confirmed, leaving, reported)

    def _note_unloaded(self) -> None:
        """Forget the dropped versions TF Serving reports unloaded, and remove their folders."""
        with self._lock:
            leaving = list(self._leaving)
        for model in sorted({model for model, _ in leaving}):
            states = self._tfserving.model_status(model)
            with self._lock:
                for key in leaving:
                    if key[0] == model and is_unloaded(states, key[1]):
                        self._leaving.pop(key, None)
        if self._store is not None:
            self._store.sweep()

    def _watch(self) -> None:
        try:
            self.check()
        except ReloaderError as error:
            self._reachability(str(error))
        else:
            self._reachability(None)


def _unloaded(internal: int, states: dict[int, VersionState]) -> bool:
    return is_unloaded(states, internal)


def _live(status: VersionState | None) -> bool:
    return status is not None and status.state in LIVE_STATES
