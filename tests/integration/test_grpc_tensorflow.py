"""A TensorFlow handler served as a gRPC API: its RPC methods call `tensorflow_client.predict`, through reloads.

TF Serving is tests/tfserving/server.py (see test_tensorflow.py). Skipped where the tensorflow extra is not installed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

pytest.importorskip("tensorflow_serving")

from tests.grpc_support import PROTO_DIR, client_modules
from tests.support import wait_until
from tests.tfserving.process import TFServingProcess
from tests.tfserving.savedmodels import INPUT, SavedModels

pytestmark = pytest.mark.localstack


@pytest.fixture(scope="module")
def tfserving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TFServingProcess]:
    server = TFServingProcess(tmp_path_factory.mktemp("tfserving"), load_delay=0.5)
    server.start()
    yield server
    server.stop()


def test_a_tensorflow_handler_answers_rpcs_through_a_reload(
    serve, s3_client, bucket, tfserving, tmp_path: Path, tmp_path_factory
):
    # GIVEN a TensorFlow gRPC API serving version 1 (y = 2x) of a SavedModel on S3
    savedmodels = SavedModels(s3_client, bucket, tmp_path)
    savedmodels.put("scaler", 1, scale=2.0)
    api = {
        "name": "tf-grpc",
        "kind": "RealtimeAPI",
        "handler": {
            "type": "tensorflow",
            "path": str(PROTO_DIR / "tf_handler.py"),
            "protobuf_path": str(PROTO_DIR / "scaler.proto"),
            "models": {"path": f"s3://{bucket}/scaler"},
            "threads_per_process": 4,
        },
        "reloading": {"interval": 0.5, "settle": 0},
    }
    env = {**tfserving.env, "RELOADER_MODEL_DIR": str(tmp_path / "models")}
    server = serve.start(serve.spec(api), env=env, grpc=True)
    modules = client_modules(tmp_path_factory.getbasetemp(), "scaler.proto")
    pb2 = modules["scaler_pb2"]
    channel = grpc.insecure_channel(server.grpc_address)
    stub = modules["scaler_pb2_grpc"].ScalerStub(channel)

    def scale(version: str = "") -> float:
        y = list(stub.Scale(pb2.Input(x=INPUT[0], version=version), timeout=30).y)
        return y[1] / INPUT[0][1]

    assert scale() == 2.0
    failures: list[str] = []
    answers: list[float] = []
    stop = threading.Event()

    def call() -> None:
        while not stop.is_set():
            try:
                answers.append(scale())
                streamed = stub.ScaleEach(pb2.Inputs(inputs=[pb2.Input(x=INPUT[0])] * 3), timeout=30)
                answers.extend(list(output.y)[1] / INPUT[0][1] for output in streamed)
            except grpc.RpcError as error:
                failures.append(f"{error.code()}: {error.details()}")

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        # WHEN version 2 (y = 3x) is uploaded while two clients call the unary and the streaming RPC
        savedmodels.put("scaler", 2, scale=3.0)
        wait_until(lambda: scale() == 3.0, timeout=60, what="version 2 served")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    # THEN no call failed, each answer came from version 1 or 2, and version 1 is still there by number
    assert failures == []
    assert set(answers) <= {2.0, 3.0} and answers
    assert scale("1") == 2.0
    with pytest.raises(grpc.RpcError) as raised:
        scale("9")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    channel.close()
