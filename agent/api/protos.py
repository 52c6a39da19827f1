"""The compile step of a gRPC API: the spec's `handler.protobuf_path`, compiled when the API starts.

Cortex 0.35 compiled the `.proto` with grpcio-tools' protoc when the API's container started; so
does this, into a temporary folder, together with the `.proto` files it imports from its own
folder, so the user checks in nothing generated. The `<name>_pb2` module it generates is
imported under that name (a handler may `import <name>_pb2` too) and handed to `Handler.__init__`;
the file's one service is what the API serves, one RPC per Handler method.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from google.protobuf import descriptor_pb2, message_factory

from agent.domain.errors import SpecError

FIELD = "handler.protobuf_path"


@dataclass(frozen=True)
class Rpc:
    """One method of the service, with the message classes that (de)serialise it."""

    name: str
    client_streaming: bool
    server_streaming: bool
    request: Any  # the generated message classes
    response: Any

    @property
    def kind(self) -> str:
        return {
            (False, False): "unary",
            (False, True): "server-streaming",
            (True, False): "client-streaming",
            (True, True): "bidirectional-streaming",
        }[(self.client_streaming, self.server_streaming)]


@dataclass(frozen=True)
class CompiledProto:
    path: Path
    module: ModuleType  # the generated `<name>_pb2`
    service: str  # its full name, `package.Service`
    rpcs: tuple[Rpc, ...]

    def handler_arguments(self) -> dict[str, Any]:
        """What `Handler.__init__` may declare: the module under Cortex's code's name and its docs' name."""
        return {"proto_module_pb2": self.module, "module_proto_pb2": self.module}

    def check(self, handler_class: type, handler_path: Path) -> None:
        """Refuse, naming them, the RPCs the Handler has no method for (each RPC calls its own method)."""
        missing = [rpc for rpc in self.rpcs if not callable(getattr(handler_class, rpc.name, None))]
        if missing:
            names = ", ".join(f"{rpc.name} ({rpc.kind})" for rpc in missing)
            raise SpecError(
                f"handler: the service {self.service} of {self.path} has the RPC(s) {names}; expected "
                f"{handler_class.__name__} in {handler_path} to define a method of the same name for each, "
                f"found none for {', '.join(rpc.name for rpc in missing)}"
            )


def compile_proto(path: Path) -> CompiledProto:
    """Compile `path` with protoc, import the generated module and find the file's one service."""
    if path.suffix != ".proto":
        raise SpecError(f"{FIELD}: expected a .proto file, found {path.name!r}")
    if not path.is_file():
        raise SpecError(f"{FIELD}: expected a .proto file, found nothing at {path}")
    with tempfile.TemporaryDirectory(prefix="reloader-proto-") as folder:
        module = _import_generated(_protoc(path, Path(folder)), Path(folder), path)
    services = list(module.DESCRIPTOR.services_by_name.values())
    if len(services) != 1:
        found = ", ".join(service.full_name for service in services) if services else "none"
        raise SpecError(f"{FIELD}: expected exactly one service in {path}, found {len(services)}: {found}")
    service = services[0]
    rpcs = tuple(
        Rpc(
            method.name,
            method.client_streaming,
            method.server_streaming,
            message_factory.GetMessageClass(method.input_type),
            message_factory.GetMessageClass(method.output_type),
        )
        for method in service.methods
    )
    return CompiledProto(path, module, service.full_name, rpcs)


def _protoc(path: Path, out: Path) -> str:
    """Generate the `_pb2` modules of `path` and of the files it imports; returns the module name of `path`.

    protoc runs as its own process (`python -m grpc_tools.protoc`, which adds the well-known
    types' folder), so its messages can be captured and reported."""
    include = path.parent.resolve()
    descriptors = out / "descriptors.pb"
    _run_protoc([f"-I{include}", f"--descriptor_set_out={descriptors}", "--include_imports", path.name], path)
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptors.read_bytes()).file
    # the imported files of the proto's own folder are generated too; the well-known types ship with protobuf
    own = [file.name for file in files if (include / file.name).is_file()]
    _run_protoc([f"-I{include}", f"--python_out={out}", *own], path)
    return path.stem.replace("-", "_") + "_pb2"


def _run_protoc(arguments: list[str], path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", *arguments], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip()
        raise SpecError(f"{FIELD}: protoc cannot compile {path}:\n{message}")


def _import_generated(name: str, folder: Path, path: Path) -> ModuleType:
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    except Exception as error:  # a clash with a file already in protobuf's default pool, say
        raise SpecError(
            f"{FIELD}: the module protoc generated from {path} cannot be imported: {type(error).__name__}: {error}"
        ) from None
    finally:
        sys.path.remove(str(folder))
