"""gRPC test helpers: the test proto compiled for grpcio's own client, and a client of a served gRPC API.

The client side is generated here with grpcio-tools, independently of the server's compile step,
as a Cortex user's client would be.
"""

from __future__ import annotations

import importlib
import sys
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


def client_modules(out: Path) -> dict[str, ModuleType]:
    """`sample_pb2`, `predictor_pb2` and `predictor_pb2_grpc`, generated once per test run into `out`."""
    if not _generated:
        from grpc_tools import protoc

        include = Path(protoc.__file__).parent / "_proto"
        arguments = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "predictor.proto",
            "sample.proto",
        ]
        assert protoc.main(arguments) == 0
        sys.path.insert(0, str(out))
        for name in ("sample_pb2", "predictor_pb2", "predictor_pb2_grpc"):
            _generated[name] = importlib.import_module(name)
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
        modules = client_modules(out)
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
