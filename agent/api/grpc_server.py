"""The gRPC server of an API with `handler.protobuf_path`: the proto's one service, as Cortex 0.35 served it.

Each RPC calls the Handler method of its own name with the arguments that method declares
(`payload`: the request message, or an iterator of them for a client-streaming RPC; `context`:
grpc's ServicerContext); a server-streaming method yields its responses. Handler calls run on a
pool of `threads_per_process` threads (grpc's per-method `experimental_thread_pool`, the hook
grpcio-health-checking uses itself), so at most that many RPCs run the handler at once and the
rest wait in line; the standard health service (`grpc.health.v1`, NOT_SERVING until the initial
load is done) and server reflection run on a pool of their own, so probes are answered while
the handler is busy. The health service's answers carry the port of the HTTP endpoints
(`/readyz`, `/models`, `/metrics`) as metadata, which is how `reloader status` finds them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agent.api.protos import CompiledProto, Rpc
from agent.domain.errors import ModelNotFoundError, ModelUnavailableError, ReloaderError

log = logging.getLogger(__name__)

HTTP_PORT_METADATA = "reloader-http-port"
INTERNAL_MESSAGE = "the handler raised an exception; see the server log"
SERVICE_THREADS = 4  # health checks and reflection streams, apart from the handler's threads
STOP_GRACE = 10.0  # seconds in-flight RPCs get to finish on shutdown


class ReadyNotifier(Protocol):
    def when_ready(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once the API is ready (now, if it is)."""


class GrpcServer:
    """The user's service, health and reflection on one port; `start()` listens, `stop()` drains."""

    def __init__(
        self,
        proto: CompiledProto,
        handler: Any,
        agent: ReadyNotifier | None,
        threads: int,
        max_message_size: int,
        http_port: int,
        share_port: bool = False,
    ) -> None:
        """`agent`: what says when the API is ready (the agent, or a serving process's view of it);
        `share_port`: serving processes (`processes_per_replica`) each bind the port with SO_REUSEPORT."""
        self._proto = proto
        self._agent = agent
        self._handler_pool = ThreadPoolExecutor(threads, thread_name_prefix="grpc-handler")
        self._service_pool = ThreadPoolExecutor(SERVICE_THREADS, thread_name_prefix="grpc-service")
        methods = {rpc.name: self._method_handler(rpc, getattr(handler, rpc.name)) for rpc in proto.rpcs}
        self._server = grpc.server(
            self._service_pool,
            handlers=[grpc.method_handlers_generic_handler(proto.service, methods)],
            options=[
                ("grpc.max_receive_message_length", max_message_size),
                ("grpc.max_send_message_length", max_message_size),
                # a second server on a taken port fails, as HTTP's does, not shares it; but the serving
                # processes of one replica share it (the agent holds the port, so no one else takes it)
                ("grpc.so_reuseport", int(share_port)),
            ],
        )
        self.health = _Health(http_port)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        for service in ("", proto.service):  # "": the server as a whole, as Kubernetes probes ask
            self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        reflection.enable_server_reflection((proto.service, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server)

    def start(self, host: str, port: int) -> None:
        """Listen on host:port; the health service turns SERVING once the agent is ready."""
        try:
            bound = self._server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as error:
            raise ReloaderError(f"cannot listen for gRPC on {host}:{port}: {error}") from None
        if bound == 0:
            raise ReloaderError(f"cannot listen for gRPC on {host}:{port}")
        self._server.start()
        if self._agent is not None:
            self._agent.when_ready(self._serving)
        else:
            self._serving()

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Answer NOT_SERVING, refuse new RPCs, give in-flight ones `grace` seconds."""
        self.health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        self._handler_pool.shutdown(wait=False, cancel_futures=True)
        self._service_pool.shutdown(wait=False, cancel_futures=True)

    def _serving(self) -> None:
        for service in ("", self._proto.service):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)  # ignored once shutting down
        log.info("gRPC service %s serving", self._proto.service)

    def _method_handler(self, rpc: Rpc, method: Callable[..., Any]) -> grpc.RpcMethodHandler:
        call = _declared_call(method)

        def respond(payload: Any, context: grpc.ServicerContext) -> Any:
            with _status_of_errors(rpc, context):
                return call(payload, context)

        def stream(payload: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with _status_of_errors(rpc, context):
                yield from call(payload, context)

        behavior: Any = stream if rpc.server_streaming else respond
        behavior.experimental_thread_pool = self._handler_pool
        factory = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(rpc.client_streaming, rpc.server_streaming)]
        handler: grpc.RpcMethodHandler = factory(
            behavior,
            request_deserializer=rpc.request.FromString,
            response_serializer=rpc.response.SerializeToString,
        )
        return handler


class _Health(health.HealthServicer):  # type: ignore[misc]
    """grpc.health.v1 whose Check answers carry the HTTP port (initial metadata `reloader-http-port`)."""

    def __init__(self, http_port: int) -> None:
        super().__init__()
        self._metadata = ((HTTP_PORT_METADATA, str(http_port)),)

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.send_initial_metadata(self._metadata)
        return super().Check(request, context)


def _declared_call(method: Callable[..., Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
    """`method(payload=..., context=...)` with only the arguments it declares, decided once, not per call."""
    parameters = inspect.signature(method).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    wants_payload = takes_all or "payload" in parameters
    wants_context = takes_all or "context" in parameters
    if wants_payload and wants_context:
        return lambda payload, context: method(payload=payload, context=context)
    if wants_payload:
        return lambda payload, _: method(payload=payload)
    if wants_context:
        return lambda _, context: method(context=context)
    return lambda _, __: method()


@contextmanager
def _status_of_errors(rpc: Rpc, context: grpc.ServicerContext) -> Iterator[None]:
    """An unknown model or version is NOT_FOUND with its message, one that cannot load now (caching)
    UNAVAILABLE with its reason; any other exception INTERNAL, generic."""
    try:
        yield
    except ModelNotFoundError as error:
        context.abort(grpc.StatusCode.NOT_FOUND, str(error))
    except ModelUnavailableError as error:  # with caching: a cold load failed or outlasted its deadline
        context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
    except Exception:
        if context.code() not in (None, grpc.StatusCode.OK):
            raise  # the handler aborted the RPC (context.abort) or set its own status
        log.exception("RPC %s raised", rpc.name)
        context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)


def advertised_http_port(address: str, timeout: float = 10.0) -> int | None:
    """The HTTP port a gRPC API at `address` (host:port) announces in its health answers; None if it names none."""
    with grpc.insecure_channel(address) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        try:
            _, call = check.with_call(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError as error:
            raise ReloaderError(f"the gRPC health service at {address} answered {error.code().name}") from None
        ports = [value for key, value in call.initial_metadata() or () if key == HTTP_PORT_METADATA]
    return int(ports[0]) if ports else None
