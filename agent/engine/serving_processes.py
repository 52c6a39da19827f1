"""`processes_per_replica: N`: the agent's side of its N serving processes.

The agent starts each serving process (a fresh interpreter: forking a process that runs threads,
boto3 or grpc is unsafe) with the replica's listening socket and one end of a private channel, and
keeps, per process, what it reported loaded. It holds the manifest, the versions every process should
hold (agent.domain.processes): a process that connects gets all of it, then every change. A load of
the agent (`ProcessLoader.load`) is done when every connected process has reported it; a removal when
every one dropped it, so a folder is retired only once no process holds it. A process that exits is
started again, after a backoff when it never got to serve (a `Handler.__init__` that keeps failing);
the reason is logged and shown in `/models`.

Threads: one `serving-channel_N` per process reads its channel (reports, and the `/models` and
`/metrics` questions it answers on that thread); restarts are scheduler timers. `_lock` guards the
manifest and every process's record; messages that must keep their order with a snapshot are sent
under it (the processes' readers never block, so a send only waits for the socket buffer).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.boundaries.channel import Channel, ChannelClosed
from agent.domain.errors import ReloaderError
from agent.domain.plan import Backoff
from agent.domain.processes import (
    Ask,
    Drop,
    Dropped,
    Entry,
    Hello,
    Latest,
    ProcessView,
    Put,
    Readiness,
    Refused,
    Reply,
    Report,
    Snapshot,
    Started,
    Touched,
)
from agent.engine.loaders import Loader
from agent.engine.scheduler import Handle, Scheduler
from agent.logs import model_logger

log = logging.getLogger(__name__)

Key = tuple[str, int]
PROCESS_VARIABLE = "RELOADER_PROCESS"  # each serving process's number, 1..N, for a handler that needs it
ANSWER_THREADS = 16  # cold loads asked for at once (each waits up to cold_load_deadline)
STATUS_THREADS = 2  # /models, /metrics and /info questions answered at once
SERVED_LONG_ENOUGH = 60.0  # seconds of serving after which an exit restarts at once, without backoff
RESTART_BACKOFF = Backoff(0.5, 30.0)  # a process that exits before it served: 0.5 s, 1 s, 2 s, ... 30 s
Command = Callable[[int, int, int], list[str]]  # (process number, socket fd, channel fd) -> argv


class ProcessLoadError(ReloaderError):
    """A serving process's `load_model` raised (the message names the process and the error)."""


@dataclass
class _Process:
    number: int
    popen: subprocess.Popen[bytes] | None = None
    channel: Channel | None = None
    pid: int | None = None
    state: str = "starting"  # starting -> serving; down
    error: str | None = None
    member: bool = False  # got the snapshot: every later change is sent to it and waited for
    loaded: dict[Key, tuple[str, str | None]] = field(default_factory=dict)
    loading: dict[Key, str] = field(default_factory=dict)  # the folder awaited: a report of another ends nothing
    dropping: set[Key] = field(default_factory=set)
    failed_starts: int = 0
    served_since: float | None = None  # when it last started serving (a crash soon after counts as failed)
    restart: Handle | None = None

    def view(self) -> ProcessView:
        return ProcessView(
            self.number,
            self.pid,
            self.state,
            self.error,
            dict(self.loaded),
            frozenset(set(self.loading) | self.dropping),
        )


class ServingProcesses:
    def __init__(
        self,
        count: int,
        command: Command,
        listening: socket.socket,
        scheduler: Scheduler,
        environment: dict[str, str],
        backoff: Backoff = RESTART_BACKOFF,
    ) -> None:
        self._processes = [_Process(number) for number in range(1, count + 1)]
        self._command = command
        self._listening = listening
        self._scheduler = scheduler
        self._environment = environment
        self._backoff = backoff
        self._manifest: dict[Key, Entry] = {}
        self._latest: dict[str, int] = {}  # with caching: "latest" per model with one in memory
        # Questions are answered off the readers: a cold load ("load") waits for every process's report,
        # which the asking process's reader must be free to receive; and cold loads have their own
        # threads, so that /models and /metrics never wait behind them.
        self._answers = ThreadPoolExecutor(STATUS_THREADS, thread_name_prefix="serving-answer")
        self._cold_loads = ThreadPoolExecutor(ANSWER_THREADS, thread_name_prefix="serving-cold-load")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = False
        self._readiness = Readiness(False, "initial load in progress")
        # Set by the composition root: the agent's answers to a process's `Ask` ("models", "metrics"),
        # and what to do when a process starts serving or ends (readiness, or why not, may change).
        self.answer: Callable[[str, Any], Any] = lambda what, argument: None
        self.on_change: Callable[[], None] = lambda: None
        self.on_touched: Callable[[Touched], None] = lambda touched: None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        for process in self._processes:
            self._spawn(process)

    def stop(self, timeout: float) -> None:
        """SIGTERM every process (each drains its requests), wait up to `timeout`, then SIGKILL what is left."""
        with self._lock:
            self._stopping = True
            for process in self._processes:
                if process.restart is not None:
                    process.restart.cancel()
            running = [p.popen for p in self._processes if p.popen is not None and p.popen.poll() is None]
        for popen in running:
            _signal(popen, signal.SIGTERM)
        # The processes keep their copies while they drain; once they close theirs, new connections are
        # refused at once rather than wait in the backlog of a socket no one accepts on any more.
        self._listening.close()
        deadline = time.monotonic() + timeout
        for popen in running:
            try:
                popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("serving process %d did not stop within %.0f s: killed", popen.pid, timeout)
                _signal(popen, signal.SIGKILL)
                popen.wait()
        with self._lock:
            self._changed.notify_all()
        self._answers.shutdown(wait=False, cancel_futures=True)
        self._cold_loads.shutdown(wait=False, cancel_futures=True)

    @property
    def all_started(self) -> bool:
        """Every process serves (has loaded what the agent holds and accepts connections)."""
        return not self.not_serving()

    def not_serving(self) -> list[str]:
        """The processes that do not serve, each said with why (empty when all serve)."""
        with self._lock:
            return [
                f"serving process {p.number} is {p.state}" + (f" (last: {p.error})" if p.error else "")
                for p in self._processes
                if p.state != "serving"
            ]

    def set_readiness(self, reason: str | None) -> None:
        """Tell every process whether the replica is ready (None) or why not."""
        readiness = Readiness(reason is None, reason or "")
        with self._lock:
            if readiness == self._readiness:
                return
            self._readiness = readiness
            for process in self._processes:
                if process.member:
                    self._send(process, readiness)

    def views(self) -> list[ProcessView]:
        with self._lock:
            return [p.view() for p in self._processes]

    def set_latest(self, model: str, version: int | None) -> None:
        """With caching: tell every process which version "latest" of `model` means (when it changed)."""
        with self._lock:
            if self._latest.get(model) == version:
                return
            if version is None:
                del self._latest[model]
            else:
                self._latest[model] = version
            for process in self._processes:
                if process.member:
                    self._send(process, Latest(model, version))

    def paths(self) -> dict[Key, str]:
        with self._lock:
            return {key: entry.path for key, entry in self._manifest.items()}

    # -- the manifest (model workers) -----------------------------------------------------------
    def put(self, entry: Entry) -> None:
        """Every connected process holds `entry` once this returns; ProcessLoadError if one failed to
        load it (then every process is back on what it held before: nothing half-applied)."""
        key = (entry.model, entry.version)
        with self._lock:
            previous = self._manifest.get(key)
            self._manifest[key] = entry
            targets = self._members()
            for process in targets:
                self._send_put(process, entry)
            self._wait(targets, key)
            failures = [(p, p.loaded[key][1]) for p in targets if p.member and _failed(p, key, entry.path)]
            if not failures:
                return
            if previous is not None:
                self._manifest[key] = previous
            else:
                del self._manifest[key]
            # Roll back every process that holds or is loading this content (one that connected meanwhile
            # got it in its snapshot), so the version stays as it was everywhere.
            holding = [p for p in self._members() if _holds(p, key, entry.path)]
            for process in holding:
                if previous is not None:
                    self._send_put(process, previous)
                else:
                    self._send_drop(process, key)
            self._wait(holding, key)
        process, error = failures[0]
        raise ProcessLoadError(f"in serving process {process.number} (pid {process.pid}): {error}")

    def drop(self, model: str, version: int, path: str | None = None) -> None:
        """No process holds (model, version) once this returns (or the process is gone). With `path`,
        only if that is still the manifest's content of it (not replaced by a newer one meanwhile)."""
        key = (model, version)
        with self._lock:
            if path is not None and (key not in self._manifest or self._manifest[key].path != path):
                return
            self._manifest.pop(key, None)
            targets = self._members()
            for process in targets:
                self._send_drop(process, key)
            self._wait(targets, key)

    def _members(self) -> list[_Process]:
        return [p for p in self._processes if p.member]

    def _send_put(self, process: _Process, entry: Entry) -> None:
        process.loading[(entry.model, entry.version)] = entry.path
        self._send(process, Put(entry))

    def _send_drop(self, process: _Process, key: Key) -> None:
        process.dropping.add(key)
        self._send(process, Drop(*key))

    def _wait(self, targets: list[_Process], key: Key) -> None:
        """Until every target that is still connected reported on `key` (called under the lock)."""
        self._changed.wait_for(
            lambda: all(not p.member or (key not in p.loading and key not in p.dropping) for p in targets)
        )

    def _send(self, process: _Process, message: Any) -> None:
        if process.channel is None:
            return
        with contextlib.suppress(ChannelClosed):  # the process is gone: its reader sees the end, records it
            process.channel.send(message)

    # -- one process ------------------------------------------------------------------------------
    def _spawn(self, process: _Process) -> None:
        channel, child_end = Channel.pair()
        argv = self._command(process.number, self._listening.fileno(), child_end)
        try:
            environment = {**self._environment, PROCESS_VARIABLE: str(process.number)}
            popen = subprocess.Popen(argv, pass_fds=(self._listening.fileno(), child_end), env=environment)
        except OSError as error:
            channel.close()
            os.close(child_end)
            self._ended(process, f"cannot start: {error}")
            return
        os.close(child_end)
        with self._lock:
            if self._stopping:  # stop() listed the running processes before this one started
                _signal(popen, signal.SIGTERM)
            process.popen, process.channel, process.pid = popen, channel, popen.pid
            process.state, process.restart = "starting", None  # its error stays until it serves: the last start's
        threading.Thread(
            target=self._read, args=(process, channel, popen), name=f"serving-channel_{process.number}", daemon=True
        ).start()

    def _read(self, process: _Process, channel: Channel, popen: subprocess.Popen[bytes]) -> None:
        refusal: str | None = None
        try:
            while True:
                message = channel.receive()
                if isinstance(message, Refused):
                    refusal = message.reason
                else:
                    self._handle(process, message)
        except ChannelClosed:
            pass
        channel.close()
        code = popen.wait()
        self._ended(process, refusal or _exit_reason(code))

    def _handle(self, process: _Process, message: Any) -> None:
        if isinstance(message, Ask):
            pool = self._cold_loads if message.what == "load" else self._answers
            with contextlib.suppress(RuntimeError):  # stopping: the pools are shut
                pool.submit(self._answer, process, message)
            return
        if isinstance(message, Touched):
            self.on_touched(message)
            return
        started = False
        with self._lock:
            if isinstance(message, Hello):
                process.member = True
                process.loading = {key: entry.path for key, entry in self._manifest.items()}
                self._send(process, Snapshot(tuple(self._manifest.values()), dict(self._latest)))
                self._send(process, self._readiness)
            elif isinstance(message, Report):
                key = (message.model, message.version)
                process.loaded[key] = (message.path, message.error)
                if process.loading.get(key) == message.path:
                    del process.loading[key]
            elif isinstance(message, Dropped):
                key = (message.model, message.version)
                process.loaded.pop(key, None)
                process.dropping.discard(key)
            elif isinstance(message, Started):
                process.state, process.error, process.served_since = "serving", None, time.monotonic()
                started = True
                log.info("serving process %d (pid %s) serves", process.number, process.pid)
            self._changed.notify_all()
        if started:
            self.on_change()

    def _answer(self, process: _Process, message: Ask) -> None:
        try:
            answer = self.answer(message.what, message.argument)
        except Exception as error:  # a question the agent cannot answer must not end the channel
            log.exception("cannot answer serving process %d's question %r", process.number, message.what)
            answer = {"error": f"{type(error).__name__}: {error}"}
        self._send(process, Reply(message.ask, answer))  # after any Put it waited for: the channel keeps order

    def _ended(self, process: _Process, reason: str) -> None:
        with self._lock:
            # A crash soon after it started serving counts as a failed start: no restart loop at full speed.
            served = process.served_since is not None and time.monotonic() - process.served_since >= SERVED_LONG_ENOUGH
            pid, process.served_since = process.pid, None
            process.member, process.state, process.error = False, "down", reason
            process.channel, process.popen = None, None
            process.loaded.clear()
            process.loading.clear()
            process.dropping.clear()
            self._changed.notify_all()
            if self._stopping:
                return
            process.failed_starts = 0 if served else process.failed_starts + 1
            delay = self._backoff.delay(process.failed_starts) if process.failed_starts else 0.0
            process.restart = self._scheduler.call_later(delay, lambda: self._restart(process))
        log.error("serving process %d (pid %s) %s; starting it again in %.1f s", process.number, pid, reason, delay)
        self.on_change()

    def _restart(self, process: _Process) -> None:
        with self._lock:
            if self._stopping:
                return
        self._spawn(process)


def _holds(process: _Process, key: Key, path: str) -> bool:
    """Whether the process holds, or is loading, that content of the version."""
    held = process.loaded.get(key)
    return process.loading.get(key) == path or (held is not None and held[0] == path and held[1] is None)


def _failed(process: _Process, key: Key, path: str) -> bool:
    held = process.loaded.get(key)
    return held is not None and held[0] == path and held[1] is not None


def _exit_reason(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def _signal(popen: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        popen.send_signal(sig)


class ProcessLoader:
    """The agent's loader with serving processes: a version serves once every process loaded it.

    `inner` is the runtime's own loader where the agent loads too (TF Serving, whose config the agent
    owns: the processes then take its value as it is); None for the Python handler, whose processes
    call `load_model` themselves."""

    def __init__(self, processes: ServingProcesses, inner: Loader | None = None) -> None:
        self._processes = processes
        self._inner = inner

    def load(self, model: str, version: int, path: Path) -> Any:
        value = self._inner.load(model, version, path) if self._inner is not None else None
        entry = Entry(model, version, str(path), value, load=self._inner is None)
        try:
            self._processes.put(entry)
        except ProcessLoadError:
            if self._inner is not None:
                self._inner.unload(model, version, value)
            raise
        return entry

    def unload(self, model: str, version: int, value: Any) -> None:
        entry: Entry = value
        self._processes.drop(model, version, entry.path)  # unless replaced by a newer content meanwhile
        if self._inner is not None:
            self._inner.unload(model, version, entry.value)
        model_logger(log, model, version).debug("every serving process dropped %s version %s", model, version)

    def describe(self, value: Any) -> dict[str, Any]:
        entry: Entry = value
        return self._inner.describe(entry.value) if self._inner is not None else {}
