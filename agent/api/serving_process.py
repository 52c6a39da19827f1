"""One serving process of `processes_per_replica: N`: the user's Handler behind the replica's socket.

`reloader serve` starts N of these (`python -m agent.api.serving_process`, a fresh interpreter each)
and hands each the listening socket and its end of a private channel (agent.boundaries.channel). A
serving process makes no AWS call and writes nothing to the store: it loads, with its own
`load_model`, the version folders its agent says are complete (agent.domain.processes), swaps them
in copy-on-write as a single process does, and reports each. Its "latest" moves to a new version
only once it has loaded it. It accepts connections only once the versions the agent held when it
connected are loaded, so a restarted process never answers with fewer models than the others.
`/readyz` says what the agent said of the replica (or "shutting down" from SIGTERM on); `/models`,
`/metrics` and `/info` are asked of the agent, which answers for the whole replica. When the agent
is gone, the process exits: the replica stops, and its orchestrator starts it again.

Threads: `MainThread` runs uvicorn; `agent-channel` reads the channel (never blocks on work: loads go
to the `apply` thread, which runs them on `load_N` threads, and drops); AnyIO worker threads run the
handler, as in a single process.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import math
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import logs
from agent.api.handler import check_handler, construct_handler, import_handler_class
from agent.api.http import create_app
from agent.api.model_client import ModelClient
from agent.api.server import server_stack
from agent.api.shutdown import GracefulServer, Shutdown
from agent.boundaries.channel import Channel, ChannelClosed
from agent.boundaries.spec_file import load_spec
from agent.domain.errors import ModelNotFoundError, ModelUnavailableError, ReloaderError
from agent.domain.index import Served
from agent.domain.processes import (
    Ask,
    Drop,
    Dropped,
    Entry,
    Hello,
    Latest,
    Put,
    Readiness,
    Refused,
    Reply,
    Report,
    Snapshot,
    Started,
    Touched,
)
from agent.domain.spec import LoadedSpec
from agent.engine.loaders import PythonLoader
from agent.engine.registry import Lookup, Registry, parse_version
from agent.metrics import ProcessRequests

if TYPE_CHECKING:
    from agent.api.protos import CompiledProto

log = logging.getLogger("reloader")

EXIT_REFUSED = 3  # Handler.__init__ raised: the agent restarts the process with backoff
EXIT_AGENT_GONE = 1
ASK_TIMEOUT = 30.0  # seconds for the agent to answer (beyond cold_load_deadline for a cold load)
TOUCH_REPORT_INTERVAL = 1.0


class ServingProcess:
    def __init__(self, spec: LoadedSpec, channel: Channel, number: int) -> None:
        api = spec.api
        self.spec = spec
        self.number = number
        self._channel = channel
        models = spec.models
        self.registry = Registry(single_model=models.fixed[0].name if models and models.single else None)
        self.proto = _compiled_proto(spec)  # handler.protobuf_path: a gRPC API
        python = api.handler.type != "tensorflow"
        handler_class = import_handler_class(spec.handler_path, spec.python_path, api.handler.env)
        check_handler(handler_class, needs_load_model=models is not None and python, http=self.proto is None)
        if self.proto is not None:
            self.proto.check(handler_class, spec.handler_path)
        self._latest: dict[str, int] = {}  # with caching: "latest" per model, as the agent resolves it
        self._ask_timeout = max(ASK_TIMEOUT, api.reloading.cold_load_deadline + ASK_TIMEOUT)
        lookup: Lookup = self.registry
        if spec.cache is not None:
            lookup = ProcessCache(self.registry, self._latest, self._ask, self._send)
        arguments = {
            "config": dict(api.handler.config),
            **handler_clients(spec, lookup),
            **(self.proto.handler_arguments() if self.proto else {}),
        }
        self.handler = construct_handler(handler_class, arguments, spec.handler_path)
        load_model = getattr(self.handler, "load_model", None) if python else None
        self._loader = PythonLoader(load_model) if load_model is not None else None
        self.shutdown = Shutdown(api.reloading.shutdown_drain, api.reloading.shutdown_timeout)
        self._readiness = Readiness(False, "initial load in progress")
        self._on_ready: list[Callable[[], None]] = []
        self._held: dict[tuple[str, int], str] = {}  # (model, version) -> the folder loaded
        self._pending: dict[tuple[str, int], Future[str | None]] = {}  # loads running (the apply thread's)
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(max(1, api.reloading.workers), thread_name_prefix="load")
        self._snapshot_loaded = threading.Event()
        self._asks = itertools.count()
        self._answers: dict[int, Future[Any]] = {}
        self._grpc_server: Any = None

    # -- the process's life ---------------------------------------------------------------------
    def run(self, listening: socket.socket, host: str, grpc_port: int | None, http_port: int) -> int:
        import uvicorn

        self._channel.send(Hello(os.getpid()))
        threading.Thread(target=self._read, name="agent-channel", daemon=True).start()
        threading.Thread(target=self._apply, name="apply", daemon=True).start()
        self._snapshot_loaded.wait()
        if self.proto is not None and grpc_port is not None:
            self._serve_grpc(host, grpc_port, http_port)
        app = create_app(
            None if self.proto else self.handler,  # a gRPC API's HTTP port has no `/`
            None,
            self.spec.api.handler.threads_per_process,
            on_shutdown=self._stop,
            shutdown=self.shutdown,
            status=self,
            requests=ProcessRequests(),
            on_started=lambda: self._channel.send(Started()),
        )
        http, loop = server_stack()
        config = uvicorn.Config(
            app,
            http=http,
            loop=loop,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=math.ceil(self.shutdown.timeout),
        )
        GracefulServer(config, self.shutdown).run(sockets=[listening])
        return 0

    def _serve_grpc(self, host: str, port: int, http_port: int) -> None:
        """Every serving process binds the gRPC port (SO_REUSEPORT; the agent holds it for the replica)."""
        from agent.api.grpc_server import GrpcServer

        assert self.proto is not None
        settings = self.spec.api.reloading
        self._grpc_server = GrpcServer(
            self.proto,
            self.handler,
            self,
            self.spec.api.handler.threads_per_process,
            settings.grpc_max_message_size,
            http_port,
            share_port=True,
        )
        self._grpc_server.start(host, port)
        self.shutdown.on_begin(self._grpc_server.health.enter_graceful_shutdown)

    def when_ready(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once the agent says the replica is ready (the gRPC health service's SERVING)."""
        if self._readiness.ready:
            callback()
        else:
            self._on_ready.append(callback)

    def _stop(self) -> None:
        if self._grpc_server is not None:
            self._grpc_server.stop()  # in-flight RPCs finish first
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _read(self) -> None:
        try:
            while True:
                message = self._channel.receive()
                if isinstance(message, (Reply, Latest, Readiness)):
                    self._take(message)  # at once: a request thread may be waiting for it
                    continue
                if isinstance(message, Snapshot):
                    self._latest.update(message.latest)  # here, in order with the `Latest` after it
                self._work.put(message)
        except ChannelClosed:
            if self.shutdown.begun:
                return
            log.error("serving process %d: the agent is gone; exiting", self.number)
            logging.shutdown()
            os._exit(EXIT_AGENT_GONE)

    def _take(self, message: Reply | Latest | Readiness) -> None:
        if isinstance(message, Reply):
            future = self._answers.pop(message.ask, None)
            if future is not None:
                future.set_result(message.answer)
        elif isinstance(message, Latest):
            if message.version is None:
                self._latest.pop(message.model, None)
            else:
                self._latest[message.model] = message.version
        else:
            self._readiness = message
            if message.ready:
                callbacks, self._on_ready = self._on_ready, []
                for callback in callbacks:
                    callback()

    def _apply(self) -> None:
        while True:
            message = self._work.get()
            if isinstance(message, Snapshot):
                self._load_snapshot(message.entries)
            elif isinstance(message, Put):
                key = (message.entry.model, message.entry.version)
                self._after_pending(key)
                self._pending[key] = self._pool.submit(self._put, message.entry)
            elif isinstance(message, Drop):
                self._after_pending((message.model, message.version))  # never before a Put sent earlier
                self._drop(message.model, message.version)

    def _after_pending(self, key: tuple[str, int]) -> None:
        """Wait for the load of `key` still running, if any: a version's changes apply in their order."""
        pending = self._pending.pop(key, None)
        if pending is not None:
            pending.result()

    def _load_snapshot(self, entries: tuple[Entry, ...]) -> None:
        """Load what the agent holds before taking any connection; a version that will not load here
        makes the process refuse to serve (the agent starts it again, with backoff, and says why) rather
        than serve without it beside processes that have it."""
        errors = [error for error in self._pool.map(self._put, entries) if error is not None]
        if errors:
            reason = f"could not load {len(errors)} of the replica's {len(entries)} version(s): {errors[0]}"
            log.error("serving process %d %s", self.number, reason)
            self._send(Refused(reason))
            logging.shutdown()
            os._exit(EXIT_REFUSED)
        self._snapshot_loaded.set()

    # -- what the agent says is there ---------------------------------------------------------------
    def _put(self, entry: Entry) -> str | None:
        key = (entry.model, entry.version)
        error = None
        if self._held.get(key) != entry.path:
            error = self._load(entry)
        self._send(Report(entry.model, entry.version, entry.path, error))
        return error

    def _load(self, entry: Entry) -> str | None:
        logger = logs.model_logger(log, entry.model, entry.version)
        started = time.monotonic()
        path = Path(entry.path)
        try:
            if entry.load:
                assert self._loader is not None, "the agent sends folders to load only to a Handler with load_model"
                value = self._loader.load(entry.model, entry.version, path)
            else:
                value = entry.value
        except Exception as error:  # the user's load_model: reported to the agent, which records it
            logger.exception("load_model failed for %s version %s in serving process %d", *key_of(entry), self.number)
            return f"load_model raised {type(error).__name__}: {error}"
        fingerprint = path.name.partition("-")[2]
        self.registry.swap_in(entry.model, Served(entry.version, fingerprint, path, value, time.time()))
        self._held[(entry.model, entry.version)] = entry.path
        del value
        seconds = time.monotonic() - started
        logger.debug("serving process %d loaded %s version %s (%.3f s)", self.number, *key_of(entry), seconds)
        return None

    def _drop(self, model: str, version: int) -> None:
        self.registry.remove(model, version)  # in-flight requests finish on the object they hold
        self._held.pop((model, version), None)
        self._send(Dropped(model, version))

    def _send(self, message: Any) -> None:
        with contextlib.suppress(ChannelClosed):  # the reader sees the end and exits
            self._channel.send(message)

    # -- ReplicaStatus: the replica's answers, from the agent ---------------------------------------
    def unready_because(self) -> str | None:
        if self.shutdown.begun:
            return "shutting down"
        readiness = self._readiness
        return None if readiness.ready else readiness.reason

    def models(self, model: str | None) -> dict[str, Any]:
        return dict(self._ask("models", model))

    def exposition(self) -> bytes:
        return bytes(self._ask("metrics"))

    def info(self) -> dict[str, Any]:
        return dict(self._ask("info"))

    def _ask(self, what: str, argument: str | None = None) -> Any:
        ask = next(self._asks)
        future: Future[Any] = Future()
        self._answers[ask] = future
        self._channel.send(Ask(ask, what, argument))
        return future.result(self._ask_timeout)


class ProcessCache:
    """With caching, where a serving process's requests find their entry: its own registry holds what
    the agent's cache holds (every process holds the same entries), "latest" is what the agent last said
    it means (`Latest`), and anything not in memory is asked of the agent, which loads it into every
    process (once, however many processes and requests ask) and answers which version it was. The
    entries used are told to the agent at most once a second (`Touched`): its LRU's recency."""

    def __init__(
        self,
        registry: Registry,
        latest: dict[str, int],
        ask: Callable[[str, Any], Any],
        send: Callable[[Any], None],
    ) -> None:
        self._registry = registry
        self._latest = latest
        self._ask = ask
        self._send = send
        self._touched: set[tuple[str, int]] = set()
        self._hits = 0
        self._next_report = 0.0

    def served(self, model: str | None = None, version: int | str | None = "latest") -> Served:
        name = self._registry.model_name(model)
        number = parse_version(version)
        if number is None:
            number = self._latest.get(name)
        if number is not None:
            served = self._registry.loaded(name).get(number)
            if served is not None:
                self._touch((name, number))
                return served
        try:
            answer = self._ask("load", (name, version))
        except (TimeoutError, ChannelClosed) as error:
            raise ModelUnavailableError(
                f"model {name!r} version {version}: no answer from the agent ({error})"
            ) from None
        if "error" in answer:
            kind = ModelNotFoundError if answer["error"] == "not found" else ModelUnavailableError
            raise kind(answer.get("message", answer["error"]))
        served = self._registry.loaded(name).get(answer["version"])
        if served is None:
            raise ModelUnavailableError(f"model {name!r} version {answer['version']} was evicted at once")
        return served

    def _touch(self, entry: tuple[str, int]) -> None:
        self._touched.add(entry)
        self._hits += 1  # approximate under concurrent hits: a count for the metrics, not a lock's worth
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + TOUCH_REPORT_INTERVAL
            touched, self._touched = frozenset(self._touched), set()
            hits, self._hits = self._hits, 0
            self._send(Touched(touched, hits))


def handler_clients(spec: LoadedSpec, lookup: Lookup) -> dict[str, Any]:
    """What the Handler is given to reach its models: `model_client`, or `tensorflow_client` over a channel
    of this process's own to the replica's TF Serving (predictions only: the agent owns its config)."""
    if spec.api.handler.type != "tensorflow":
        return {"model_client": ModelClient(lookup)}
    from agent.api.tensorflow_client import TensorFlowClient
    from agent.boundaries.tfserving import open_tfserving

    settings = spec.api.reloading
    _, tfserving = open_tfserving(
        settings.tfserving_address, settings.tfserving_rpc_timeout, settings.tfserving_predict_timeout
    )
    return {"tensorflow_client": TensorFlowClient(lookup, tfserving)}


def _compiled_proto(spec: LoadedSpec) -> CompiledProto | None:
    if spec.protobuf_path is None:
        return None
    from agent.api.protos import compile_proto  # grpcio is imported for a gRPC API only

    return compile_proto(spec.protobuf_path)


def key_of(entry: Entry) -> tuple[str, int]:
    return entry.model, entry.version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent.api.serving_process",
        description="One serving process of `reloader serve` with processes_per_replica above 1 (started by it).",
    )
    parser.add_argument("spec", type=Path)
    parser.add_argument("--api")
    parser.add_argument("--number", type=int, required=True)
    parser.add_argument("--socket-fd", type=int, required=True, help="the replica's listening socket")
    parser.add_argument("--channel-fd", type=int, required=True, help="this process's end of the agent's channel")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, required=True, help="the port of the listening socket")
    parser.add_argument("--grpc-port", type=int, help="a gRPC API's port (handler.protobuf_path)")
    args = parser.parse_args(argv)
    channel = Channel(args.channel_fd)
    listening = socket.socket(fileno=args.socket_fd)
    spec = load_spec(args.spec, args.api)
    logs.configure(spec.api.handler.log_level, tag=f"process-{args.number}")
    try:
        process = ServingProcess(spec, channel, args.number)
    except ReloaderError as error:
        log.error("serving process %d cannot serve: %s", args.number, error)
        with contextlib.suppress(ChannelClosed):
            channel.send(Refused(str(error)))
        return EXIT_REFUSED
    return process.run(listening, args.host, args.grpc_port, args.http_port)


if __name__ == "__main__":
    sys.exit(main())
