"""Test helpers: awaiting conditions with a deadline, running `reloader serve`, uploading models."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from infra.cdk.constants import S3_EVENTS

ROOT = Path(__file__).resolve().parent.parent
LOCALSTACK_SCRIPT = ROOT / "scripts" / "localstack.sh"
EXAMPLES = ROOT / "examples"
EVENTS = ROOT / "tests" / "events"
# The `reloader` console script of this virtualenv, as a user runs it (pip installs it next to the interpreter).
RELOADER = Path(sys.executable).with_name("reloader")
REGION = "us-east-1"

T = TypeVar("T")


def localstack_answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=2):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reloader() -> str:
    """The path of the installed `reloader` command; fails, saying how to install it, where it is missing."""
    if not RELOADER.is_file():
        raise AssertionError(f"expected the `reloader` console script at {RELOADER}, found none: pip install -e .")
    return str(RELOADER)


def wait_until(condition: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, what: str = "") -> T:
    """Return the first truthy value of `condition()`, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # a condition may fail while the system converges
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}; last error: {last_error}")


class Server:
    """A running `reloader serve` process."""

    def __init__(
        self, process: subprocess.Popen[bytes], url: str, log_path: Path, grpc_address: str | None = None
    ) -> None:
        self.process = process
        self.url = url  # the HTTP endpoints
        self.log_path = log_path
        self.grpc_address = grpc_address  # host:port of a gRPC API (handler.protobuf_path)
        self.http = httpx.Client(base_url=url, timeout=30)

    def post(self, payload: Any, **params: Any) -> httpx.Response:
        return self.http.post("/", json=payload, params=params)

    def models(self) -> dict[str, Any]:
        response = self.http.get("/models")
        response.raise_for_status()
        return dict(response.json())

    def version(self, model: str) -> dict[str, Any]:
        return dict(self.models().get(model, {}))

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Stop with `sig` (SIGTERM, as Kubernetes does; SIGINT, as Ctrl-C does) and wait for the exit."""
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def prediction(server: Server, **params: Any) -> float:
    """The test handler's prediction for a request to `/` (fails on any non-200 answer)."""
    response = server.post({}, **params)
    assert response.status_code == 200, response.text
    return float(response.json()["prediction"])


class ServeFactory:
    def __init__(self, tmp_path: Path, endpoint: str) -> None:
        self.tmp_path = tmp_path
        self.endpoint = endpoint
        self.servers: list[Server] = []

    def spec(self, api: dict[str, Any], name: str = "cortex.yaml") -> Path:
        path = self.tmp_path / name
        path.write_text(yaml.safe_dump([api]))
        return path

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a `reloader` command to completion."""
        return subprocess.run(
            [reloader(), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "AWS_ENDPOINT_URL": self.endpoint, **(env or {})},
        )

    def start(
        self,
        spec: Path,
        env: dict[str, str] | None = None,
        wait_ready: bool = True,
        api: str | None = None,
        ready_timeout: float = 60,
        command_name: str = "serve",
        grpc: bool = False,
        hide: tuple[str, ...] = (),
        ready_interval: float = 0.2,
    ) -> Server:
        """Run `reloader serve` (or `command_name`, e.g. "agent") and wait until it is ready.

        `grpc`: a gRPC API; its HTTP endpoints get a port of their own (`--http-port`).
        `hide` names modules made unimportable in that process, as where they cannot be installed
        (then through `python -c`, since the console script cannot hide them)."""
        port = free_port()
        http_port = free_port() if grpc else port
        log_path = self.tmp_path / f"{command_name}-{port}.log"
        command = [reloader(), command_name, str(spec), "--port", str(port)]
        if grpc:
            command += ["--http-port", str(http_port)]
        if hide:
            hidden = "".join(f"sys.modules[{name!r}] = None; " for name in hide)
            command[0:1] = [sys.executable, "-c", f"import sys; {hidden}from agent.cli import main; sys.exit(main())"]
        if api:
            command += ["--api", api]
        process = subprocess.Popen(
            command,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "AWS_ENDPOINT_URL": self.endpoint, **(env or {})},
        )
        server = Server(process, f"http://127.0.0.1:{http_port}", log_path, f"127.0.0.1:{port}" if grpc else None)
        self.servers.append(server)

        if wait_ready:
            with httpx.Client(timeout=2) as client:  # one client: a new one per poll costs more CPU than the poll

                def ready() -> bool:
                    if process.poll() is not None:
                        raise AssertionError(f"reloader serve exited with {process.returncode}:\n{server.log()}")
                    return client.get(f"{server.url}/readyz").status_code == 200

                wait_until(ready, timeout=ready_timeout, interval=ready_interval, what="readyz")
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


def tagged_model(tag: float) -> bytes:
    """A real, pickled scikit-learn estimator fitted on iris that predicts `tag` for any flower."""
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyRegressor

    features, targets = load_iris(return_X_y=True)
    return pickle.dumps(DummyRegressor(strategy="constant", constant=tag).fit(features, targets))


class Models:
    """Writes model versions to S3 in the layout the test handler (tests/handlers/tagged.py) loads."""

    def __init__(self, s3_client: Any, bucket: str) -> None:
        self.s3 = s3_client
        self.bucket = bucket

    def put_version(
        self,
        prefix: str,
        version: int | None,
        tag: float,
        marker: str | None = None,
        extra: dict[str, bytes] | None = None,
    ) -> None:
        """Upload a model predicting `tag`; `version` None writes a non-versioned model.

        `extra` files go first, in their order, and model.pkl last: with a MANIFEST first, any partial
        listing of the version fails the handler's completeness check instead of loading."""
        folder = f"{prefix}/{version}/" if version is not None else f"{prefix}/"
        files = {**(extra or {}), "model.pkl": tagged_model(tag)}
        for name, body in files.items():
            self.s3.put_object(Bucket=self.bucket, Key=folder + name, Body=body)
        if marker:
            self.s3.put_object(Bucket=self.bucket, Key=folder + marker, Body=b"")

    def delete_prefix(self, prefix: str) -> None:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                self.s3.delete_object(Bucket=self.bucket, Key=item["Key"])


def event_fixture(name: str) -> str:
    """The text of tests/events/`name`: a message body or Lambda event as AWS delivers it."""
    return (EVENTS / name).read_text()


def s3_event_body(key: str, bucket: str, name: str = "ObjectCreated:Put") -> str:
    """An SQS message body as S3 writes it (tests/events/s3_object_created.json): one event `name` for `key`."""
    body = json.loads(event_fixture("s3_object_created.json"))
    (record,) = body["Records"]
    record["eventName"] = name
    record["s3"]["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    record["s3"]["object"]["key"] = urllib.parse.quote(key, safe="/")  # URL-encoded, as S3 sends keys
    return json.dumps(body)


def s3_test_event_body(bucket: str) -> str:
    """The s3:TestEvent S3 sends to a queue when its notifications are configured (tests/events/s3_test_event.json)."""
    return json.dumps({**json.loads(event_fixture("s3_test_event.json")), "Bucket": bucket})


def api_spec(
    models: dict[str, Any], name: str = "test-api", reloading: dict[str, Any] | None = None, **handler: Any
) -> dict[str, Any]:
    """A Cortex RealtimeAPI spec for the test handler (a `reloading` value of None leaves that field at its default)."""
    return {
        "name": name,
        "kind": "RealtimeAPI",
        "handler": {
            "type": "python",
            "path": str(ROOT / "tests" / "handlers" / "tagged.py"),
            "multi_model_reloading": models,
            **handler,
        },
        "reloading": {
            key: value
            for key, value in {"interval": 0.5, "settle": 0, **(reloading or {})}.items()
            if value is not None
        },
    }


def notify_queue(s3_client: Any, sqs_client: Any, bucket: str, prefix: str = "") -> str:
    """A queue (with a dead-letter queue) that receives the bucket's S3 notifications; returns its URL."""
    import json
    import uuid

    name = f"events-{uuid.uuid4().hex[:10]}"
    dead = sqs_client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dead_arn = sqs_client.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 3})
    url = sqs_client.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    arn = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = {"QueueArn": arn, "Events": list(S3_EVENTS)}
    if prefix:
        rule["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    s3_client.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [rule]}
    )
    return str(url)


def notify_topic(s3_client: Any, sns_client: Any, bucket: str) -> str:
    """An SNS topic that receives the bucket's S3 notifications; returns its ARN."""
    arn = sns_client.create_topic(Name=f"models-{bucket}")["TopicArn"]
    s3_client.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"TopicConfigurations": [{"TopicArn": arn, "Events": list(S3_EVENTS)}]}
    )
    return str(arn)


def metric(server: Server, name: str, **labels: str) -> float:
    """The value of one sample of `/metrics` (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = server.http.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


class PrivateLocalStack:
    """A LocalStack of one test's own, on its own port, that the test may stop and start again."""

    def __init__(self, home: Path, extra_services: str = "") -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, "LOCALSTACK_PORT": str(self.port), "LOCALSTACK_HOME": str(home)}
        if extra_services:
            self._env["LOCALSTACK_EXTRA_SERVICES"] = extra_services

    def start(self) -> None:
        subprocess.run([str(LOCALSTACK_SCRIPT), "start"], check=True, env=self._env)

    def stop(self) -> None:
        subprocess.run([str(LOCALSTACK_SCRIPT), "stop"], check=True, env=self._env)
        wait_until(lambda: not localstack_answers(self.endpoint), timeout=30, what="LocalStack to stop")

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)
