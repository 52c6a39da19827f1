"""The `reloader` command: serve an API spec, inspect a running one, push a model version.

This is the composition root: the only place real clients (boto3), the store and the agent
are constructed and wired together.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import logs
from agent.api.handler import call_with_declared, check_handler, import_handler_class
from agent.api.http import create_app
from agent.api.info import model_info
from agent.api.model_client import ModelClient
from agent.boundaries import aws
from agent.boundaries.s3 import S3
from agent.boundaries.sns import Topic
from agent.boundaries.sources import ModelObjects
from agent.boundaries.sqs import Queue, QueueAdmin
from agent.boundaries.store import ModelStore
from agent.domain.errors import ReloaderError, SpecError
from agent.domain.locations import S3Location, parse_location
from agent.domain.routing import ModelSet
from agent.domain.savedmodel import savedmodel_incomplete
from agent.domain.settings import ReloadingSettings, describe_settings
from agent.domain.spec import LoadedSpec, load_spec
from agent.domain.tfserving import InternalVersions
from agent.engine.agent import Agent, EventSource
from agent.engine.consumer import QueueConsumer
from agent.engine.event_sources import QueueEvents, TopicEvents
from agent.engine.loaders import PythonLoader
from agent.engine.registry import Registry
from agent.engine.replica_queue import ReplicaQueue
from agent.engine.tfserving import TFServingLoader
from agent.metrics import Metrics

log = logging.getLogger("reloader")

EXIT_SPEC = 2


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
        help="serve an API spec: load every model, keep it equal to S3, answer HTTP",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve one API of a Cortex 0.35 API spec. Exits with status 2 on an invalid spec.",
        epilog="Reloader settings (the spec's `reloading:` block; the environment variable wins):\n" + settings,
    )
    _service_arguments(serve)
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
    status.add_argument("--url", default="http://127.0.0.1:8888", help="the API's base URL")
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
    """A handler, its agent and its HTTP app, built from a loaded spec (`with_handler=False`: the agent alone)."""

    def __init__(self, spec: LoadedSpec, s3_client: Any | None = None, with_handler: bool = True) -> None:
        api = spec.api
        self.spec = spec
        models = spec.models
        self.registry = Registry(single_model=models.fixed[0].name if models and models.single else None)
        self.tensorflow = TensorFlowParts(api.reloading, self.registry) if api.handler.type == "tensorflow" else None
        if self.tensorflow and not with_handler and api.reloading.model_dir is None:
            raise SpecError(
                "reloading.model_dir (RELOADER_MODEL_DIR): `reloader agent` writes the versions where TF Serving "
                "reads them, so it needs that folder, shared with the TF Serving container; found none (the "
                "default, a private temporary folder, is out of TF Serving's reach). Set tfserving_model_dir "
                "(RELOADER_TFSERVING_MODEL_DIR) too when TF Serving mounts it at another path"
            )
        self.handler: Any = None
        if with_handler:
            handler_class = import_handler_class(spec.handler_path, spec.python_path, api.handler.env)
            check_handler(handler_class, needs_load_model=models is not None and self.tensorflow is None)
            clients = (
                {"tensorflow_client": self.tensorflow.client}
                if self.tensorflow
                else {"model_client": ModelClient(self.registry)}
            )
            self.handler = _construct_handler(spec, handler_class, {"config": dict(api.handler.config), **clients})
        self.agent: Agent | None = None
        self._s3: S3 | None = None
        self._own_model_dir: Path | None = None
        if models is not None:
            settings = api.reloading
            model_dir = settings.model_dir
            if model_dir is None:
                model_dir = self._own_model_dir = Path(tempfile.mkdtemp(prefix=f"reloader-{api.name}-"))
            metrics = Metrics()
            s3 = self._s3 = None
            if not models.is_local:
                client = s3_client or aws.client("s3")
                s3 = self._s3 = S3(client, settings.download_concurrency, metrics.s3_call)
            self.agent = Agent(
                models,
                ModelObjects(s3),
                # TF Serving drops a version before the reconciler removes its folder: no grace needed there
                self.tensorflow.store(model_dir)
                if self.tensorflow
                else ModelStore(model_dir, retire_after=settings.retire_after),
                (
                    self.tensorflow.make_loader(models, model_dir, metrics)
                    if self.tensorflow
                    else PythonLoader(self.handler.load_model)
                ),
                self.registry,
                settings,
                metrics,
                savedmodel_incomplete if self.tensorflow else None,
            )
            self.agent.event_sources += event_sources(api.name, settings, self.agent)
        info = model_info(self.registry, self.tensorflow.tfserving if self.tensorflow else None)
        self.app = create_app(
            self.handler, self.agent, api.handler.threads_per_process, on_shutdown=self.stop, info=info
        )

    def start(self) -> None:
        if self.tensorflow is not None:
            self.tensorflow.start()
        if self.agent is not None:
            self.agent.start()

    def stop(self) -> None:
        if self.tensorflow is not None:
            self.tensorflow.stop()  # first: TF Serving loads being awaited give up, so the workers can stop
        if self.agent is not None:
            self.agent.stop()
        if self.tensorflow is not None:
            self.tensorflow.close()
        if self._s3 is not None:
            self._s3.close()
        if self._own_model_dir is not None:
            shutil.rmtree(self._own_model_dir, ignore_errors=True)


def _construct_handler(spec: LoadedSpec, handler_class: type, arguments: dict[str, Any]) -> Any:
    """`Handler(config, ...)`; an exception in the user's __init__ is reported by name, not as a traceback."""
    try:
        return call_with_declared(handler_class, arguments)
    except Exception as error:
        frames = traceback.extract_tb(error.__traceback__)
        where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        log.debug("Handler.__init__ raised", exc_info=True)
        raise ReloaderError(
            f"handler: {handler_class.__name__}.__init__ in {spec.handler_path} raised "
            f"{type(error).__name__}: {error}{where}"
        ) from None


def event_sources(api_name: str, settings: ReloadingSettings, agent: Agent) -> list[EventSource]:
    """The SQS consumer of queue mode or topic mode, or nothing (polling only)."""
    if not settings.event_driven:
        return []
    sqs_client = aws.client("sqs")

    def consumer(url: str, on_queue_missing: Callable[[], None] | None = None) -> QueueConsumer:
        return QueueConsumer(
            Queue(sqs_client, url, agent.metrics.sqs_call),
            agent.models,
            agent.workers,
            agent.registry,
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
    )
    return [TopicEvents(replica_queue, consumer)]


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
    logs.configure(spec.api.handler.log_level)
    not_applicable = spec.not_applicable_fields()
    if not_applicable:
        log.warning("accepted but not applicable on a single replica, ignored: %s", ", ".join(not_applicable))
    service = Service(spec, with_handler=with_handler)
    http, loop = server_stack()
    config = uvicorn.Config(
        service.app, host=args.host, port=args.port, http=http, loop=loop, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    threading.Thread(target=_start_when_listening, args=(server, service), name="agent-start", daemon=True).start()
    what = "serving API" if with_handler else "agent of API"
    log.info("%s %r on http://%s:%d (uvicorn with %s and %s)", what, spec.api.name, args.host, args.port, http, loop)
    server.run()
    return 0


def server_stack() -> tuple[str, str]:
    """uvicorn's HTTP parser and event loop: httptools and uvloop (`uvicorn[standard]`) where they import,
    else its pure-Python h11 and asyncio (uvloop has no Windows build, for one). As uvicorn's "auto" picks,
    named here so the log says which."""
    chosen = []
    for fast, fallback in (("httptools", "h11"), ("uvloop", "asyncio")):
        try:
            importlib.import_module(fast)
            chosen.append(fast)
        except ImportError:
            chosen.append(fallback)
    return chosen[0], chosen[1]


def _start_when_listening(server: Any, service: Service) -> None:
    """Start the agent once HTTP answers, so /healthz does not wait for a large initial load."""
    while not server.started and not server.should_exit:
        time.sleep(0.01)
    if not server.should_exit:
        service.start()


# -- handler.type: tensorflow ----------------------------------------------------------------

TENSORFLOW_EXTRA = "pip install 'model-reloader[tensorflow]'"


class TensorFlowParts:
    """TF Serving's gRPC client, the loader that owns its config, and the handler's `tensorflow_client`.

    TensorFlow is imported here only, so the Python handler runs without the extra installed.
    """

    def __init__(self, settings: ReloadingSettings, registry: Registry) -> None:
        missing = [name for name in ("grpc", "tensorflow", "tensorflow_serving") if not importlib.util.find_spec(name)]
        if missing:
            raise SpecError(
                f"handler.type: tensorflow needs the tensorflow extra, and {', '.join(missing)} "
                f"cannot be imported: {TENSORFLOW_EXTRA}"
            )
        from agent.api.tensorflow_client import TensorFlowClient
        from agent.boundaries.tfserving import TFServing, connect

        self.settings = settings
        self.channel = connect(settings.tfserving_address)
        self.tfserving = TFServing(self.channel, settings.tfserving_rpc_timeout, settings.tfserving_predict_timeout)
        self.client = TensorFlowClient(registry, self.tfserving)
        self.loader: TFServingLoader | None = None
        self._store: ModelStore | None = None

    def store(self, model_dir: Path) -> ModelStore:
        """TF Serving's layout: `<model_dir>/<model>/<internal version>/`, a fresh number per download,
        each with a record of its content so that a restarted agent takes over what TF Serving serves."""
        self._store = ModelStore(model_dir, InternalVersions().folder_name, record=True)
        return self._store

    def make_loader(self, models: ModelSet, model_dir: Path, metrics: Metrics) -> TFServingLoader:
        base_dir = self.settings.tfserving_model_dir or str(model_dir.resolve())
        assert self._store is not None, "store() comes first"
        self.loader = TFServingLoader(self.tfserving, models, base_dir, self.settings, metrics, store=self._store)
        self._store.in_use = self.loader.in_use  # a folder goes only once TF Serving reports it unloaded
        return self.loader

    def start(self) -> None:
        if self.loader is not None:
            self.loader.start()

    def stop(self) -> None:
        if self.loader is not None:
            self.loader.stop()

    def close(self) -> None:
        self.channel.close()


# -- status ----------------------------------------------------------------------------------


def status_command(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/") + "/models"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            models = json.load(response)
    except (urllib.error.URLError, OSError) as error:
        print(f"reloader: cannot read {url}: {error}", file=sys.stderr)
        return 1
    print(format_status(models))
    return 0


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
    os._exit(main())
