"""gRPC APIs (`handler.protobuf_path`), served by a real `reloader serve` and called with grpcio's own client.

The service (tests/handlers/grpc/predictor.proto) has a unary, a server-streaming, a client-streaming
and a bidirectional RPC, plus one without payload; its handler serves the pickled models of
tests/handlers/tagged.py.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.grpc_support import PROTO, SERVICE, Client, grpc_api
from tests.support import Models, ServeFactory, Server, free_port, notify_queue, tagged_model, wait_until

pytestmark = pytest.mark.localstack


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """Clients to close at the end."""
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def connect(clients: list[Client], server: Server, tmp_path_factory: pytest.TempPathFactory, **options: int) -> Client:
    assert server.grpc_address is not None
    # the client modules are generated once per run, into the run's temporary folder
    client = Client(server.grpc_address, tmp_path_factory.getbasetemp(), list(options.items()))
    clients.append(client)
    return client


def local_model(folder: Path, tag: float, slow: float = 0) -> Path:
    """A model folder on local disk (version 1) predicting `tag`, whose load takes `slow` seconds."""
    version = folder / "1"
    version.mkdir(parents=True)
    (version / "model.pkl").write_bytes(tagged_model(tag))
    if slow:
        (version / "SLOW").write_text(str(slow))
    return folder


def test_unary_and_streaming_rpcs_never_fail_through_version_reloads(
    serve, s3_client, sqs_client, bucket, clients, tmp_path_factory
):
    # GIVEN a gRPC API serving version 1 of a model on S3, reloaded from S3's events through SQS
    models = Models(s3_client, bucket)
    models.put_version("m", 1, tag=1.0, marker="_READY")
    reloading = {"queue_url": notify_queue(s3_client, sqs_client, bucket), "ready_marker": "_READY"}
    spec = serve.spec(grpc_api({"path": f"s3://{bucket}/m"}, threads_per_process=4, reloading=reloading))
    server = serve.start(spec, grpc=True)
    client = connect(clients, server, tmp_path_factory)
    assert client.predict() == 1.0
    failures: list[str] = []
    answers: dict[str, list[float]] = {"unary-0": [], "unary-1": [], "stream-0": [], "stream-1": []}
    stop = threading.Event()
    samples = client.pb2.Samples(samples=[client.sample() for _ in range(5)])

    def call(name: str) -> None:
        while not stop.is_set():
            try:
                if name.startswith("unary"):
                    answers[name].append(client.predict())
                else:
                    predictions = [p.prediction for p in client.stub.PredictEach(samples, timeout=30)]
                    assert len(predictions) == 5, predictions
                    answers[name].extend(predictions)
            except (grpc.RpcError, AssertionError) as error:
                failures.append(f"{name}: {error}")

    threads = [threading.Thread(target=call, args=(name,)) for name in answers]
    for thread in threads:
        thread.start()
    try:
        # WHEN versions 2 and 3 are pushed while four clients call without pause
        for version in (2, 3):
            models.put_version("m", version, tag=float(version), marker="_READY")
            wait_until(lambda version=version: client.predict() == float(version), what=f"version {version}")
        wait_until(lambda: all(values and values[-1] == 3.0 for values in answers.values()), what="every client on 3")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    # THEN no call failed, and each client saw the versions in order (never an older one after a newer)
    assert failures == []
    for name, values in answers.items():
        assert set(values) <= {1.0, 2.0, 3.0}, name
        assert values == sorted(values), f"{name} went back to an older version"
    assert server.version("grpc-api")["latest"] == 3


def test_each_rpc_calls_its_own_method_and_errors_become_statuses(serve, tmp_path, clients, tmp_path_factory):
    # GIVEN a gRPC API with a unary, a server-streaming, a client-streaming, a bidirectional and a no-payload RPC
    api = grpc_api({"path": str(local_model(tmp_path / "m", tag=4.0))}, config={"greeting": "hello"})
    api["reloading"]["grpc_max_message_size"] = 4096
    server = serve.start(serve.spec(api), grpc=True)
    client = connect(clients, server, tmp_path_factory)
    sample = client.sample
    # WHEN each RPC is called THEN each answers from its own method (Cortex 0.35 bound them all to the last one)
    assert client.predict() == 4.0
    streamed = client.stub.PredictEach(client.pb2.Samples(samples=[sample(), sample(), sample()]), timeout=30)
    assert [p.prediction for p in streamed] == [4.0, 4.0, 4.0]
    assert client.stub.PredictSum(iter([sample(), sample()]), timeout=30).prediction == 8.0
    assert [p.prediction for p in client.stub.PredictLive(iter([sample()] * 4), timeout=30)] == [4.0] * 4
    from google.protobuf import empty_pb2

    assert client.stub.Greeting(empty_pb2.Empty(), timeout=30).text == "hello"

    # an exception in the handler: INTERNAL with a generic message; the traceback only in the log
    with pytest.raises(grpc.RpcError) as raised:
        client.predict(fail=True)
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in raised.value.details() and "server log" in raised.value.details()
    assert "RuntimeError: secret internal detail" in server.log()
    # ... also in the middle of a stream, after the responses before it
    received: list[float] = []
    with pytest.raises(grpc.RpcError) as raised:
        for prediction in client.stub.PredictEach(client.pb2.Samples(samples=[sample(), sample(fail=True)])):
            received.append(prediction.prediction)
    assert raised.value.code() == grpc.StatusCode.INTERNAL and received == [4.0]
    # an unknown version: NOT_FOUND with the message
    with pytest.raises(grpc.RpcError) as raised:
        client.predict(version="7")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND and "7" in raised.value.details()
    # a message above grpc_max_message_size (4096 bytes): refused by grpc, RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as raised:
        client.predict(features=[1.0] * 1000)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # the HTTP port has the health, readiness, models and metrics endpoints, and no `/`
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert httpx.post(f"{server.url}/", json={}).status_code in (404, 405)
    # a second server on the same gRPC port fails to start (grpc would share it by SO_REUSEPORT)
    port = server.grpc_address.rsplit(":", 1)[1]
    result = serve.run("serve", str(serve.spec(api, "second.yaml")), "--port", port, "--http-port", str(free_port()))
    assert result.returncode == 1 and f"cannot listen for gRPC on 127.0.0.1:{port}" in result.stderr, result.stderr


def test_health_is_not_serving_until_ready_and_reflection_lists_the_service(
    serve: ServeFactory, tmp_path, clients, tmp_path_factory
):
    # GIVEN a gRPC API whose model takes 4 s to load
    api = grpc_api({"path": str(local_model(tmp_path / "m", tag=1.0, slow=4))})
    server = serve.start(serve.spec(api), grpc=True, wait_ready=False)
    client = connect(clients, server, tmp_path_factory)
    # WHEN it is asked before the load is done THEN the health service says NOT_SERVING, as /readyz does
    status = wait_until(client.health, what="the health service to answer")
    assert status == "NOT_SERVING"
    assert httpx.get(f"{server.url}/readyz").status_code == 503
    # and SERVING once the model is loaded, for the server and for its service
    wait_until(lambda: client.health() == "SERVING", what="SERVING")
    assert client.health(SERVICE) == "SERVING"
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    # reflection lists the service (grpcurl's `list`), health and reflection
    assert client.reflected_services() == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        SERVICE,
    ]
    # `reloader status` pointed at the gRPC port finds the HTTP endpoints
    result = serve.run("status", "--url", f"http://{server.grpc_address}")
    assert result.returncode == 0, result.stderr
    assert "grpc-api" in result.stdout and "ready" in result.stdout


def test_at_sigterm_health_turns_not_serving_with_readyz_while_the_drain_still_serves(
    serve: ServeFactory, tmp_path, clients, tmp_path_factory
):
    # GIVEN a ready gRPC API with a 3 s drain
    api = grpc_api({"path": str(local_model(tmp_path / "m", tag=1.0))})
    server = serve.start(serve.spec(api), grpc=True, env={"RELOADER_SHUTDOWN_DRAIN": "3"})
    client = connect(clients, server, tmp_path_factory)
    assert client.health() == "SERVING"
    # WHEN Kubernetes sends SIGTERM
    server.process.send_signal(signal.SIGTERM)
    # THEN the health service says NOT_SERVING at once, as /readyz does, while RPCs are still answered
    wait_until(lambda: client.health() == "NOT_SERVING", timeout=2, what="NOT_SERVING at SIGTERM")
    assert httpx.get(f"{server.url}/readyz").status_code == 503
    assert client.health(SERVICE) == "NOT_SERVING"
    assert client.predict() == 1.0
    server.process.wait(timeout=30)


def test_threads_per_process_bounds_concurrent_rpcs_and_health_answers_meanwhile(
    serve, tmp_path, clients, tmp_path_factory
):
    from google.protobuf import empty_pb2

    # GIVEN a gRPC API with two handler threads whose Greeting RPC holds its thread for 1 s
    api = grpc_api({"path": str(local_model(tmp_path / "m", tag=1.0))}, threads_per_process=2, config={"hold": 1.0})
    server = serve.start(serve.spec(api), grpc=True)
    client = connect(clients, server, tmp_path_factory)
    # WHEN five Greeting calls are made at once
    futures = [client.stub.Greeting.future(empty_pb2.Empty(), timeout=30) for _ in range(5)]
    # THEN the health service answers at once all the same (it has threads of its own) ...
    assert client.health() == "SERVING"
    started = time.monotonic()
    client.health()
    assert time.monotonic() - started < 0.5
    # ... and at most two ran the handler at once
    most = [int(dict(future.trailing_metadata())["most-running"]) for future in futures]
    assert max(most) == 2


REFUSED_HANDLER = """
class Handler:
    def __init__(self, config, proto_module_pb2):
        self.pb2 = proto_module_pb2
    def Predict(self, payload):
        return self.pb2.Prediction()
"""


@pytest.mark.parametrize(
    ("proto", "handler", "words"),
    [
        pytest.param(
            'syntax = "proto3";\nmessage M { int32 a = 1; }\n',
            REFUSED_HANDLER,
            ["handler.protobuf_path: expected exactly one service in {proto}, found 0"],
            id="no-service",
        ),
        pytest.param(
            'syntax = "proto3";\npackage p;\nmessage M { int32 a = 1; }\n'
            "service A { rpc Predict (M) returns (M); }\nservice B { rpc Predict (M) returns (M); }\n",
            REFUSED_HANDLER,
            ["handler.protobuf_path: expected exactly one service in {proto}, found 2: p.A, p.B"],
            id="two-services",
        ),
        pytest.param(
            'syntax = "proto3";\npackage p;\nmessage M { int32 a = 1; }\n'
            "service S { rpc Predict (M) returns (M); rpc Explain (M) returns (stream M); }\n",
            REFUSED_HANDLER,
            ["the service p.S of {proto} has the RPC(s) Explain (server-streaming)", "found none for Explain"],
            id="missing-method",
        ),
        pytest.param(
            'syntax = "proto3";\nmessage M { int32 a = 1 }\n',
            REFUSED_HANDLER,
            ["handler.protobuf_path: protoc cannot compile {proto}", 'api.proto:2:25: Expected ";"'],
            id="syntax-error",
        ),
    ],
)
def test_an_unservable_proto_or_handler_is_refused_at_start_naming_it(serve, tmp_path, proto, handler, words):
    # GIVEN a spec whose proto or handler cannot be served
    (tmp_path / "api.proto").write_text(proto)
    (tmp_path / "handler.py").write_text(handler)
    api = {
        "name": "refused",
        "kind": "RealtimeAPI",
        "handler": {"type": "python", "path": "handler.py", "protobuf_path": "api.proto"},
    }
    # WHEN it is served
    result = serve.run("serve", str(serve.spec(api)), "--port", "1")
    # THEN it exits with status 2 before serving, naming the file and what is wrong
    assert result.returncode == 2, result.stderr
    for word in words:
        assert word.format(proto=tmp_path / "api.proto") in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_proto_file_must_exist_and_the_http_port_must_differ(serve, tmp_path):
    api = grpc_api({"path": str(tmp_path)}, protobuf_path=tmp_path / "missing.proto")
    result = serve.run("serve", str(serve.spec(api)), "--port", "1")
    assert result.returncode == 2 and f"found nothing at {tmp_path / 'missing.proto'}" in result.stderr
    api = grpc_api({"path": str(local_model(tmp_path / "m", tag=1.0))}, protobuf_path=PROTO)
    result = serve.run("serve", str(serve.spec(api)), "--port", "1234", "--http-port", "1234")
    assert result.returncode == 2 and "expected a port other than the gRPC port 1234" in result.stderr


def test_without_the_grpc_extra_a_grpc_api_exits_2_saying_what_to_install(tmp_path):
    import subprocess
    import sys

    import yaml

    # GIVEN a gRPC API spec, and grpcio-tools hidden (a None entry in sys.modules makes its import fail)
    hide = "import sys; sys.modules['grpc_tools'] = None; from agent.cli import main; sys.exit(main())"
    spec = tmp_path / "cortex.yaml"
    spec.write_text(yaml.safe_dump([grpc_api({"path": str(tmp_path)})]))
    # WHEN it is served
    command = [sys.executable, "-c", hide, "serve", str(spec)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    # THEN it exits with status 2, naming the field, what is missing and what to install
    assert result.returncode == 2, result.stderr
    assert "handler.protobuf_path: a gRPC API needs the grpc extra, and grpc_tools cannot be imported" in result.stderr
    assert "pip install 'model-reloader[grpc]'" in result.stderr


def test_two_serving_processes_share_the_grpc_port_and_follow_reloads(
    serve, s3_client, bucket, clients, tmp_path_factory
):
    # GIVEN a gRPC API served by two processes (processes_per_replica), version 1 on S3
    from google.protobuf import empty_pb2

    models = Models(s3_client, bucket)
    models.put_version("m", 1, tag=1.0, marker="_READY")
    spec = grpc_api(
        {"path": f"s3://{bucket}/m"},
        processes_per_replica=2,
        threads_per_process=2,
        reloading={"ready_marker": "_READY"},
    )
    server = serve.start(serve.spec(spec), grpc=True)

    # THEN RPCs on new connections reach both processes (each binds the port with SO_REUSEPORT); a
    # channel of its own subchannels opens a connection of its own (grpc shares them across channels)
    own = {"grpc.use_local_subchannel_pool": 1}

    def pids() -> set[str]:
        answered = set()
        for _ in range(12):
            client = connect(clients, server, tmp_path_factory, **own)
            _, call = client.stub.Greeting.with_call(empty_pb2.Empty(), timeout=30)
            answered.add(dict(call.trailing_metadata())["pid"])
        return answered

    wait_until(lambda: len(pids()) == 2, what="RPCs answered by two processes")
    assert connect(clients, server, tmp_path_factory).health() == "SERVING"
    # WHEN version 2 is uploaded THEN every new connection predicts with it, through either process
    models.put_version("m", 2, tag=2.0, marker="_READY")
    wait_until(
        lambda: all(connect(clients, server, tmp_path_factory, **own).predict() == 2.0 for _ in range(12)),
        what="version 2 in both processes",
    )
    status = server.version("grpc-api")["versions"]["2"]["processes"]
    assert {number: state["state"] for number, state in status.items()} == {"1": "ready", "2": "ready"}
    # THEN SIGTERM stops them all, by the signal
    assert server.stop() == -signal.SIGTERM
