"""The fake TF Serving (tests/tfserving/server.py) as a child process on a fixed loopback port, so a
test can kill it and start it again; plus direct gRPC reads of what it serves."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.support import ROOT, free_port, wait_until

States = get_model_status_pb2.ModelVersionStatus.State


class TFServingProcess:
    def __init__(self, workdir: Path, load_delay: float = 0.5, poll_interval: float = 0.2) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.events_path = workdir / "tfserving-events.jsonl"
        self.log_path = workdir / "tfserving.log"
        self._arguments = ["--load-delay", str(load_delay), "--poll-interval", str(poll_interval)]
        self.process: subprocess.Popen[bytes] | None = None
        channel = grpc.insecure_channel(self.address, options=[("grpc.max_reconnect_backoff_ms", 500)])
        self._models = model_service_pb2_grpc.ModelServiceStub(channel)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        self._channel = channel

    @property
    def env(self) -> dict[str, str]:
        """The environment that points the agent at this server."""
        return {"RELOADER_TFSERVING_ADDRESS": self.address}

    def start(self) -> None:
        command = [sys.executable, "-m", "tests.tfserving.server", "--port", str(self.port)]
        command += ["--events", str(self.events_path), *self._arguments]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answers, timeout=90, what=f"the fake TF Serving on {self.address}")

    def kill(self) -> None:
        """End it at once, as a crash would: everything it served is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._channel.close()

    def status(self, model: str) -> dict[int, str]:
        """Version -> state name, as GetModelStatus reports them ({} for a model it does not know)."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        try:
            response = self._models.GetModelStatus(request, timeout=5)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return {}
            raise
        return {int(s.version): States.Name(s.state) for s in response.model_version_status}

    def available(self, model: str) -> list[int]:
        return sorted(version for version, state in self.status(model).items() if state == "AVAILABLE")

    def predict(self, model: str, x: list[list[float]], version: int | None = None) -> list[list[float]]:
        """y for input x, asked of the server directly (its latest AVAILABLE version when none is given)."""
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(x, dtype=tf.float32))
        response = self._predictions.Predict(request, timeout=10)
        result: list[list[float]] = tf.make_ndarray(response.outputs["y"]).tolist()
        return result

    def events(self, model: str | None = None) -> list[dict[str, Any]]:
        """State changes so far, oldest first."""
        return [line for line in self._lines() if "state" in line and (model is None or line["model"] == model)]

    def configs(self) -> list[dict[str, list[int]]]:
        """Every config it was sent (model -> versions), oldest first."""
        return [line["config"] for line in self._lines() if "config" in line]

    def _lines(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines() if line]

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"the fake TF Serving exited with {self.process.returncode}:\n{self.log_path.read_text()}"
            )
        try:
            self.status("-")
        except grpc.RpcError:
            return False
        return True
