"""gRPC test helpers: the test proto compiled for grpcio's own client, and a client of a served gRPC API.

The client side is generated here with grpcio-tools, independently of the server's compile step,
as a Cortex user's client would be.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.support import ROOT

PROTO_DIR = ROOT / "tests" / "handlers" / "grpc"
PROTO = PROTO_DIR / "predictor.proto"
SERVICE = "reloader.test.Predictor"
_generated: dict[str, ModuleType] = {}
_generating = threading.Lock()


def client_modules(out: Path, *protos: str) -> dict[str, ModuleType]:
    """The `_pb2` and `_pb2_grpc` modules of `protos` (files of tests/handlers/grpc), generated once per run."""
    with _generating:
        return _generate(out, protos)


def _generate(out: Path, protos: tuple[str, ...]) -> dict[str, ModuleType]:
    missing = [name for name in protos if name.removesuffix(".proto") + "_pb2" not in _generated]
    if missing:
        # protoc in a process of its own: in-process, grpc_tools' protoc crashes (SIGSEGV) where TensorFlow is loaded
        arguments = ["-m", "grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}"]
        subprocess.run([sys.executable, *arguments, *missing], check=True)
        if str(out) not in sys.path:
            sys.path.insert(0, str(out))
        for name in missing:
            for suffix in ("_pb2", "_pb2_grpc"):
                module = name.removesuffix(".proto") + suffix
                _generated[module] = importlib.import_module(module)
    return _generated


def grpc_api(
    models: dict[str, Any],
    name: str = "grpc-api",
    reloading: dict[str, Any] | None = None,
    handler_path: Path = PROTO_DIR / "handler.py",
    protobuf_path: Path = PROTO,
    **handler: Any,
) -> dict[str, Any]:
    """A Cortex RealtimeAPI spec for the gRPC test handler (tests/handlers/grpc/handler.py)."""
    return {
        "name": name,
        "kind": "RealtimeAPI",
        "handler": {
            "type": "python",
            "path": str(handler_path),
            "python_path": str(ROOT / "tests" / "handlers"),
            "protobuf_path": str(protobuf_path),
            "multi_model_reloading": models,
            **handler,
        },
        "reloading": {"interval": 0.5, "settle": 0, **(reloading or {})},
    }


class Client:
    """grpcio's own client of a served API: its Predictor stub, health and reflection."""

    def __init__(self, address: str, out: Path, options: list[tuple[str, Any]] | None = None) -> None:
        modules = client_modules(out, "sample.proto", "predictor.proto")
        self.pb2 = modules["predictor_pb2"]
        self._sample = modules["sample_pb2"].Sample
        self.channel = grpc.insecure_channel(address, options=options or [])
        self.stub = modules["predictor_pb2_grpc"].PredictorStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def sample(self, **fields: Any) -> Any:
        return self._sample(**fields)

    def predict(self, **fields: Any) -> float:
        return float(self.stub.Predict(self.sample(**fields), timeout=30).prediction)

    def health(self, service: str = "") -> str:
        response = self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    def reflected_services(self) -> list[str]:
        return sorted(ProtoReflectionDescriptorDatabase(self.channel).get_services())

    def close(self) -> None:
        self.channel.close()
