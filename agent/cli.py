"""The `reloader` command: serve an API spec, inspect a running one, push a model version.

This is the composition root: the only place real clients (boto3), the store and the agent
are constructed and wired together.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import importlib
import importlib.util
import json
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import logs
from agent.api.handler import check_handler, construct_handler, import_handler_class
from agent.api.http import create_app
from agent.api.info import model_info
from agent.api.processes_status import ProcessesStatus
from agent.api.server import listening_socket, server_stack, shared_port
from agent.api.shutdown import GracefulServer, Shutdown
from agent.boundaries import aws
from agent.boundaries.s3 import S3
from agent.boundaries.sources import ModelObjects
from agent.boundaries.spec_file import load_spec
from agent.domain.errors import ReloaderError, SpecError
from agent.domain.locations import S3Location, parse_location
from agent.domain.processes import thread_limits, usable_cpus
from agent.domain.settings import ReloadingSettings, describe_settings
from agent.domain.spec import LoadedSpec
from agent.engine.agent import Agent, EventSource
from agent.engine.registry import Registry
from agent.engine.scheduler import Scheduler
from agent.engine.serving_processes import ProcessLoader, ServingProcesses
from agent.metrics import Metrics
from agent.runtimes import build_runtime

if TYPE_CHECKING:
    from agent.api.protos import CompiledProto

log = logging.getLogger("reloader")

EXIT_SPEC = 2
AGENT_STOP_MARGIN = 5.0  # seconds of shutdown_timeout kept for the agent after its serving processes stopped


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except SpecError as error:
        print(f"reloader: {error}", file=sys.stderr)
        return EXIT_SPEC
    except ReloaderError as error:
        print(f"reloader: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    settings = "\n".join(
        f"  {env:<30} {name} (default {'unset' if default is None else default}): {text}"
        for name, env, default, text in describe_settings()
    )
    parser = argparse.ArgumentParser(
        prog="reloader",
        description="Serve Cortex 0.35 style APIs whose models follow S3, reloaded from S3 event notifications.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="AWS endpoints and credentials come from the standard AWS environment "
        "(AWS_ENDPOINT_URL, AWS_REGION, ...).",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve an API spec: keep its models equal to S3 (every version loaded, or with cache_size an LRU "
        "loaded on request), answer HTTP (or gRPC)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve one API of a Cortex 0.35 API spec. Exits with status 2 on an invalid spec. "
        "With handler.protobuf_path it is a gRPC API: --port serves the .proto's service (with the gRPC health "
        "and reflection services), --http-port the HTTP endpoints. With handler.processes_per_replica N above 1, "
        "this process is the replica's agent and N serving processes, each with its own Handler, answer on the "
        "same port.",
        epilog="Reloader settings (the spec's `reloading:` block; the environment variable wins):\n" + settings,
    )
    _service_arguments(serve)
    serve.add_argument(
        "--http-port",
        type=int,
        help="with handler.protobuf_path (--port serves gRPC): the port of /healthz, /readyz, /models and "
        "/metrics (default: reloading.http_port, else --port + 1)",
    )
    serve.set_defaults(run=serve_command)

    agent = commands.add_parser(
        "agent",
        help="run the agent alone, beside a TF Serving: keep its models equal to S3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Keep the TF Serving of one API (handler.type: tensorflow) equal to S3, with no handler: "
        "a sidecar. Answers /healthz, /readyz, /models and /metrics. Exits with status 2 on an invalid spec.",
        epilog="Reloader settings (the spec's `reloading:` block; the environment variable wins):\n" + settings,
    )
    _service_arguments(agent)
    agent.set_defaults(run=agent_command)

    status = commands.add_parser("status", help="print the models of a running API")
    status.add_argument(
        "--url",
        default="http://127.0.0.1:8888",
        help="the API's base URL (a gRPC API's port will do: it names its HTTP port)",
    )
    status.set_defaults(run=status_command)

    push = commands.add_parser(
        "push",
        help="upload a local folder as a new version of a model",
        description="Upload LOCAL_DIR to s3://bucket/prefix/model/VERSION/ in parallel; "
        "the ready marker is written last.",
    )
    push.add_argument("local_dir", type=Path, help="the version's files")
    push.add_argument("destination", help="the model's path, s3://bucket/prefix/model/")
    push.add_argument(
        "--version", type=_version_number, help="version number, 0 or more (default: the current time in seconds)"
    )
    push.add_argument("--marker", default="_READY", help="ready marker written last (default _READY)")
    push.add_argument("--no-marker", action="store_true", help="write no ready marker")
    push.set_defaults(run=push_command)
    return parser


def _version_number(value: str) -> int:
    """A version folder's name: a non-negative integer, as discovery reads them."""
    if not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, found {value!r}")
    return int(value)


def _service_arguments(command: argparse.ArgumentParser) -> None:
    """The arguments `serve` and `agent` share: which API of which spec, and where to listen."""
    command.add_argument("spec", type=Path, help="the API spec YAML file")
    command.add_argument("--api", help="which API of the spec file (needed when it holds several)")
    command.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    command.add_argument("--port", type=int, default=8888, help="port to listen on (default 8888)")


# -- serve -----------------------------------------------------------------------------------


class Service:
    """A handler, its agent and its HTTP app, built from a loaded spec (`with_handler=False`: the agent alone).

    With `serving` (processes_per_replica above 1), the handler runs in serving processes that function
    makes, and this process is the replica's agent alone: no handler, no HTTP app (`status` answers the
    processes' questions). The composition root: real clients, the scheduler and the runtime are made
    here and passed down.
    """

    def __init__(
        self,
        spec: LoadedSpec,
        s3_client: Any | None = None,
        with_handler: bool = True,
        serving: Callable[[Scheduler], ServingProcesses] | None = None,
    ) -> None:
        api = spec.api
        settings = api.reloading
        self.spec = spec
        models = spec.models
        self.registry = Registry(single_model=models.fixed[0].name if models and models.single else None)
        self.scheduler = Scheduler()
        self.metrics = Metrics(requests=serving is None)
        self._own_model_dir: Path | None = None
        model_dir = settings.model_dir
        if model_dir is None:
            model_dir = self._own_model_dir = Path(tempfile.mkdtemp(prefix=f"reloader-{api.name}-"))
        self.runtime = build_runtime(
            api.handler.type,
            self.registry,
            settings,
            model_dir,
            self.scheduler,
            models,
            self.metrics,
            sidecar=not with_handler,
            inferentia=api.compute.inf > 0,
        )
        self.processes = serving(self.scheduler) if serving is not None else None
        self.handler: Any = None
        self.proto = compile_grpc_api(spec) if with_handler else None  # handler.protobuf_path: a gRPC API
        self.grpc_server: Any = None  # started by _run, stopped first
        if with_handler:
            self._handler(spec)
        self.agent: Agent | None = None
        self._s3: S3 | None = None
        if models is not None:
            if not models.is_local:
                client = s3_client or aws.client("s3")
                self._s3 = S3(client, settings.download_concurrency, self.metrics.s3_call)
            if self.processes is None:
                loader = self.runtime.loader
            else:  # a version serves once every serving process loaded it
                loader = ProcessLoader(self.processes, None if self.runtime.needs_load_model else self.runtime.loader)
            self.agent = Agent(
                models,
                ModelObjects(self._s3),
                self.runtime.store,
                loader,
                self.registry,
                settings,
                self.metrics,
                self.runtime.completeness,
                self.scheduler,
                self.runtime.lifecycle,
                cache=spec.cache,
            )
            self.runtime.serve_through(self.agent.lookup)
            self.agent.event_sources += event_sources(api.name, settings, self.agent)
        http_handler = None if self.proto else self.handler  # a gRPC API's HTTP port has no `/`
        self.shutdown = Shutdown(api.reloading.shutdown_drain, api.reloading.shutdown_timeout)
        snapshot = self.agent.index.snapshot if self.agent is not None else dict
        info = model_info(self.registry, snapshot, self.runtime.tfserving)
        self.status: ProcessesStatus | None = None
        if self.processes is not None:
            assert self.agent is not None, "serving processes need models (the spec requires them)"
            self.status = ProcessesStatus(self.agent, self.processes, self.metrics, self.shutdown, info)
        self.app = create_app(
            http_handler,
            self.agent,
            api.handler.threads_per_process,
            on_shutdown=self.stop,
            shutdown=self.shutdown,
            info=info,
            status=self.status,
        )

    def _handler(self, spec: LoadedSpec) -> None:
        """Import and check the spec's Handler; construct it here unless serving processes do."""
        api = spec.api
        handler_class = import_handler_class(spec.handler_path, spec.python_path, api.handler.env)
        check_handler(
            handler_class,
            needs_load_model=spec.models is not None and self.runtime.needs_load_model,
            http=self.proto is None,
        )
        if self.proto is not None:
            self.proto.check(handler_class, spec.handler_path)
        if self.processes is not None:
            return  # each serving process constructs its own
        proto_module = self.proto.handler_arguments() if self.proto else {}
        arguments = {"config": dict(api.handler.config), **self.runtime.clients, **proto_module}
        self.handler = construct_handler(handler_class, arguments, spec.handler_path)
        self.runtime.attach(self.handler)

    def start(self) -> None:
        self.runtime.start()
        if self.processes is not None:
            self.processes.start()
        if self.agent is not None:
            self.agent.start()

    def stop(self) -> None:
        if self.grpc_server is not None:
            self.grpc_server.stop()  # in-flight RPCs finish before what they call stops
        if self.processes is not None:  # each drains its requests first; the agent's own stop keeps a margin
            self.processes.stop(max(0.0, self.shutdown.remaining() - AGENT_STOP_MARGIN))
        self.runtime.stop()
        if self.agent is not None:
            self.agent.stop()
        self.runtime.close()
        if self._s3 is not None:
            self._s3.close()
        if self._own_model_dir is not None:
            shutil.rmtree(self._own_model_dir, ignore_errors=True)


def event_sources(api_name: str, settings: ReloadingSettings, agent: Agent) -> list[EventSource]:
    """The SQS consumer of queue mode or topic mode, or nothing (polling only)."""
    if not settings.event_driven:
        return []
    # Imported here: poll mode needs none of them (nor Powertools' event models, which take ~40 ms to import).
    from agent.boundaries.sns import Topic
    from agent.boundaries.sqs import Queue, QueueAdmin
    from agent.engine.consumer import QueueConsumer
    from agent.engine.event_sources import QueueEvents, TopicEvents
    from agent.engine.replica_queue import ReplicaQueue

    sqs_client = aws.client("sqs")

    def consumer(url: str, on_queue_missing: Callable[[], None] | None = None) -> QueueConsumer:
        return QueueConsumer(
            Queue(sqs_client, url, agent.metrics.sqs_call),
            agent.models,
            agent.workers,
            agent.scheduler,
            agent.metrics,
            settings.visibility_timeout,
            on_queue_missing=on_queue_missing,
        )

    if settings.queue_url:
        queue = Queue(sqs_client, settings.queue_url)
        try:
            if "RedrivePolicy" not in queue.attributes("RedrivePolicy"):
                log.warning(
                    "queue %s has no redrive policy: messages that keep failing are never set aside", settings.queue_url
                )
        except ReloaderError as error:
            log.warning("cannot read the attributes of %s: %s", settings.queue_url, error)
        return [QueueEvents(consumer(settings.queue_url))]
    assert settings.topic_arn is not None
    replica_queue = ReplicaQueue(
        QueueAdmin(sqs_client),
        Topic(aws.client("sns"), settings.topic_arn),
        settings.queue_prefix,
        api_name,
        settings.replica_id or socket.gethostname(),
        settings.visibility_timeout,
        settings.heartbeat_interval,
        agent.scheduler,
    )
    return [TopicEvents(replica_queue, consumer, agent.scheduler)]


def serve_command(args: argparse.Namespace) -> int:
    return _run(args, with_handler=True)


def agent_command(args: argparse.Namespace) -> int:
    return _run(args, with_handler=False)


def _run(args: argparse.Namespace, with_handler: bool) -> int:
    import uvicorn

    spec = load_spec(args.spec, args.api)
    if not with_handler and spec.api.handler.type != "tensorflow":
        raise SpecError(
            f"handler.type: `reloader agent` keeps a TF Serving equal to S3 and needs type tensorflow, "
            f"found {spec.api.handler.type!r}; serve a python handler with `reloader serve`"
        )
    if not with_handler and spec.cache is not None:
        raise SpecError(
            f"handler.models.cache_size: `reloader agent` answers no predictions, so with caching (found "
            f"cache_size: {spec.cache.memory}) nothing would ever be loaded; run `reloader serve` for caching, "
            "or remove cache_size and disk_cache_size"
        )
    logs.configure(spec.api.handler.log_level)
    not_applicable = spec.not_applicable_fields()
    if not_applicable:
        log.warning("accepted but not applicable on a single replica, ignored: %s", ", ".join(not_applicable))
    if with_handler and spec.api.handler.processes_per_replica > 1:
        return _run_processes(args, spec)
    service = Service(spec, with_handler=with_handler)
    http_port = args.port
    if service.proto is not None:
        http_port = start_grpc_server(service, args)
    # Bound before uvicorn runs: connections wait in the backlog meanwhile, so the agent starts at
    # once, beside the server, and /healthz never waits for a large initial load.
    listening = listening_socket(args.host, http_port)
    http, loop = server_stack()
    config = uvicorn.Config(
        service.app,
        http=http,
        loop=loop,
        log_level="warning",
        access_log=False,
        ws="none",  # no WebSocket endpoint: its protocol module is not even imported
        timeout_graceful_shutdown=math.ceil(service.shutdown.timeout),  # requests in flight, within the deadline
    )
    server = GracefulServer(config, service.shutdown)
    # What start-up built (modules, the spec, the handler) lives as long as the process: the cyclic
    # collector skips it from now on (the first scan of a `dir` of 10,000 models spent ~0.3 s in it).
    gc.freeze()
    threading.Thread(target=service.start, name="agent-start", daemon=True).start()
    what = "serving API" if with_handler else "agent of API"
    if service.proto is not None:
        what = "HTTP endpoints (/healthz, /readyz, /models, /metrics) of API"
    log.info("%s %r on http://%s:%d (uvicorn with %s and %s)", what, spec.api.name, args.host, http_port, http, loop)
    try:
        server.run(sockets=[listening])
    finally:
        if service.shutdown.abandoned:  # threads still downloading would hold the interpreter's exit
            logging.shutdown()
            os._exit(0)
    return 0


def _run_processes(args: argparse.Namespace, spec: LoadedSpec) -> int:
    """processes_per_replica above 1: this process is the replica's agent (every AWS call, the store);
    N serving processes, started with its listening socket, run the handler and answer."""
    count = spec.api.handler.processes_per_replica
    http_port = args.port
    grpc_port: socket.socket | None = None
    if spec.protobuf_path is not None:  # every process binds the gRPC port; the agent holds it for them
        http_port = grpc_api_http_port(args, spec.api.reloading)
        grpc_port = shared_port(args.host, args.port)
    listening = listening_socket(args.host, http_port)
    # prometheus-client's multiprocess mode: the folder is set before the processes import it, and empty.
    metrics_dir = tempfile.mkdtemp(prefix="reloader-metrics-")
    environment = {
        **os.environ,
        **thread_limits(os.environ, usable_cpus(len(os.sched_getaffinity(0)), _cpu_max()), count),
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
    }
    spec_path = args.spec.resolve()

    def command(number: int, socket_fd: int, channel_fd: int) -> list[str]:
        argv = [sys.executable, "-m", "agent.api.serving_process", str(spec_path), "--number", str(number)]
        argv += ["--socket-fd", str(socket_fd), "--channel-fd", str(channel_fd)]
        argv += ["--host", args.host, "--http-port", str(http_port)]
        argv += ["--grpc-port", str(args.port)] if grpc_port is not None else []
        return argv + (["--api", args.api] if args.api else [])

    service = Service(
        spec, serving=lambda scheduler: ServingProcesses(count, command, listening, scheduler, environment)
    )
    service.metrics.include_processes(metrics_dir)
    stopping = threading.Event()
    received: list[int] = []

    def on_signal(number: int, _: Any) -> None:
        received.append(number)
        if not stopping.is_set():
            name = signal.Signals(number).name
            log.info("%s: stopping the serving processes (each drains its requests), then the agent", name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        finished = _serve_until_signal(service, stopping, args, spec, http_port, grpc_port)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if not finished:  # threads still downloading would hold the interpreter's exit
        logging.shutdown()
        os._exit(0)
    # Ended by the signal, as a single process (uvicorn re-raises it): the exit status says which.
    signal.signal(received[0], signal.SIG_DFL)
    os.kill(os.getpid(), received[0])
    return 0


def _serve_until_signal(
    service: Service,
    stopping: threading.Event,
    args: argparse.Namespace,
    spec: LoadedSpec,
    http_port: int,
    grpc_port: socket.socket | None,
) -> bool:
    """Start, serve until SIGTERM or SIGINT, stop; False when the stop overran shutdown_timeout."""
    count = spec.api.handler.processes_per_replica
    service.start()
    http, loop = server_stack()
    what = "serving API" if grpc_port is None else f"gRPC API on {args.host}:{args.port}, HTTP endpoints of API"
    log.info(
        "%s %r on http://%s:%d with %d serving processes (uvicorn with %s and %s)",
        what,
        spec.api.name,
        args.host,
        http_port,
        count,
        http,
        loop,
    )
    stopping.wait()
    service.shutdown.begin()
    assert service.status is not None
    service.status.tell_processes()
    finished = service.shutdown.stop_within(service.stop)
    if grpc_port is not None:
        grpc_port.close()
    return finished


def _cpu_max() -> str | None:
    """This container's CPU quota (cgroup v2), if the system says."""
    try:
        return Path("/sys/fs/cgroup/cpu.max").read_text()
    except OSError:
        return None


# -- handler.protobuf_path: a gRPC API -------------------------------------------------------

GRPC_EXTRA = "pip install 'model-reloader[grpc]'"


def compile_grpc_api(spec: LoadedSpec) -> CompiledProto | None:
    """The compiled proto of a gRPC API, None for an HTTP API; grpcio is imported for a gRPC API only."""
    path = spec.protobuf_path
    if path is None:
        return None
    missing = [name for name in ("grpc", "grpc_tools", "grpc_health", "grpc_reflection") if not _importable(name)]
    if missing:
        raise SpecError(
            f"handler.protobuf_path: a gRPC API needs the grpc extra, and {', '.join(missing)} "
            f"cannot be imported: {GRPC_EXTRA}"
        )
    from agent.api.protos import compile_proto

    return compile_proto(path)


def start_grpc_server(service: Service, args: argparse.Namespace) -> int:
    """Serve the proto's service on --port; returns the port left for the HTTP endpoints."""
    from agent.api.grpc_server import GrpcServer

    assert service.proto is not None
    settings = service.spec.api.reloading
    http_port = grpc_api_http_port(args, settings)
    grpc_server = GrpcServer(
        service.proto,
        service.handler,
        service.agent,
        service.spec.api.handler.threads_per_process,
        settings.grpc_max_message_size,
        http_port,
    )
    grpc_server.start(args.host, args.port)
    service.grpc_server = grpc_server
    service.shutdown.on_begin(grpc_server.health.enter_graceful_shutdown)  # NOT_SERVING at SIGTERM, as /readyz
    log.info("serving gRPC service %s of %s on %s:%d", service.proto.service, service.proto.path, args.host, args.port)
    return http_port


def grpc_api_http_port(args: argparse.Namespace, settings: ReloadingSettings) -> int:
    """The HTTP endpoints' port of a gRPC API: --http-port, else reloading.http_port, else --port + 1."""
    http_port = getattr(args, "http_port", None) or settings.http_port or args.port + 1
    if http_port == args.port:
        raise SpecError(
            f"--http-port / reloading.http_port: expected a port other than the gRPC port {args.port}, "
            f"found {http_port}"
        )
    return int(http_port)


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


# -- status ----------------------------------------------------------------------------------


def status_command(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    try:
        try:
            models = _read_models(base)
        except http.client.BadStatusLine as error:
            if not _is_http2(str(error.args[0]) if error.args else ""):
                raise
            base = _http_url_of_grpc_api(base)
            models = _read_models(base)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        print(f"reloader: cannot read {base}/models: {error}", file=sys.stderr)
        return 1
    print(format_status(models))
    return 0


def _read_models(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/models", timeout=10) as response:
        return dict(json.load(response))


def _is_http2(line: str) -> bool:
    """An HTTP/2 server (a gRPC API's port) opens with a SETTINGS frame (type 4) where HTTP/1 has a status line."""
    return len(line) >= 4 and line[3] == "\x04"


def _http_url_of_grpc_api(base: str) -> str:
    """The HTTP endpoints of the gRPC API at `base`: it names their port in its health service's answers."""
    url = urllib.parse.urlsplit(base)
    hint = (
        f"{base} serves gRPC (an API with handler.protobuf_path); its HTTP endpoints are on its --http-port "
        f"(default: its port + 1): reloader status --url {url.scheme}://{url.hostname}:<http port>"
    )
    if not _importable("grpc"):
        raise ReloaderError(f"{hint}; or install the grpc extra ({GRPC_EXTRA}) to have it found")
    from agent.api.grpc_server import advertised_http_port

    port = advertised_http_port(f"{url.hostname}:{url.port or 80}")
    if port is None:
        raise ReloaderError(hint)
    return f"{url.scheme}://{url.hostname}:{port}"


def format_status(models: dict[str, Any]) -> str:
    rows = [("MODEL", "VERSION", "STATE", "FINGERPRINT", "LOADED", "ERROR")]
    for name, model in models.items():
        if model.get("error"):
            rows.append((name, "-", "invalid", "-", "-", model["error"]))
        for version, status in model["versions"].items():
            latest = " (latest)" if model.get("latest") == int(version) else ""
            loaded = time.strftime("%H:%M:%S", time.localtime(status["loaded_at"])) if status["loaded_at"] else "-"
            rows.append((name, version + latest, status["state"], status["fingerprint"], loaded, status["error"] or ""))
    if len(rows) == 1:
        return "no models"
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + str(row[-1])
        for row in rows
    ).rstrip()


# -- push ------------------------------------------------------------------------------------


def push_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    source: Path = args.local_dir
    if not source.is_dir():
        print(
            f"reloader: expected a folder to push, found {'a file' if source.exists() else 'nothing'} at {source}",
            file=sys.stderr,
        )
        return 2
    try:
        destination = parse_location(args.destination)
    except ValueError as error:
        print(f"reloader: destination: {error}", file=sys.stderr)
        return 2
    if not isinstance(destination, S3Location):
        print(f"reloader: destination: expected s3://bucket/prefix/model/, found {args.destination!r}", file=sys.stderr)
        return 2
    version = args.version if args.version is not None else int(time.time())
    marker = None if args.no_marker else args.marker
    target = destination.child(str(version))
    files = [
        (path, target.key_prefix + path.relative_to(source).as_posix())
        for path in sorted(source.rglob("*"))
        if path.is_file()
    ]
    if not files:
        print(f"reloader: {source} holds no files", file=sys.stderr)
        return 2
    s3 = S3(aws.client("s3"))
    if marker:
        s3.delete(target.bucket, target.key_prefix + marker)  # an in-place re-push is not loadable until done
    total = sum(path.stat().st_size for path, _ in files)
    with tqdm(
        total=total, unit="B", unit_scale=True, desc=f"version {version}", disable=not sys.stderr.isatty()
    ) as bar:
        s3.upload(files, target.bucket, on_progress=bar.update)
    if marker:
        s3.put(target.bucket, target.key_prefix + marker)
    print(f"pushed {len(files)} file(s), {total} bytes, to {target}/" + (f" (marker {marker})" if marker else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
