"""The HTTP server: `/` dispatches to the Handler's `handle_<method>` (agent/api/endpoint.py), plus health,
`/info`, `/models` and `/metrics`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from agent.api.endpoint import HandlerEndpoint, RequestRecorder
from agent.api.shutdown import Shutdown
from agent.metrics import Metrics

if TYPE_CHECKING:  # a serving process has no agent, and imports no AWS SDK (agent.api.serving_process)
    from agent.engine.agent import Agent


class ReplicaStatus(Protocol):
    """What answers `/readyz`, `/models`, `/metrics` and `/info`: this process's agent (`AgentStatus`), or,
    in a serving process of `processes_per_replica`, the replica's agent over the local channel."""

    def unready_because(self) -> str | None:
        """Why `/readyz` answers 503 (and `reloader_ready` is 0), or None when ready."""

    def models(self, model: str | None) -> dict[str, Any]:
        """The `/models` view (`model`: that model only, `?model=`)."""

    def exposition(self) -> bytes: ...

    def info(self) -> dict[str, Any]: ...


class AgentStatus:
    """The replica's status from the agent in this process (None: an API without models)."""

    def __init__(
        self,
        agent: Agent | None,
        metrics: Metrics,
        shutdown: Shutdown | None = None,
        info: Callable[[], dict[str, Any]] | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self._agent = agent
        self._metrics = metrics
        self._shutdown = shutdown
        self._info = info
        self._ready = ready or (lambda: agent is None or agent.ready)

    def unready_because(self) -> str | None:
        if self._shutdown is not None and self._shutdown.begun:
            return "shutting down"
        if not self._ready():
            return "initial load in progress"
        return None

    def models(self, model: str | None) -> dict[str, Any]:
        return dict(self._agent.index.snapshot(model)) if self._agent is not None else {}

    def exposition(self) -> bytes:
        return self._metrics.exposition()

    def info(self) -> dict[str, Any]:
        return self._info() if self._info is not None else {"model_metadata": {}}


def create_app(
    handler: Any,
    agent: Agent | None,
    threads: int = 1,
    on_shutdown: Callable[[], None] | None = None,
    shutdown: Shutdown | None = None,
    info: Callable[[], dict[str, Any]] | None = None,
    status: ReplicaStatus | None = None,
    requests: RequestRecorder | None = None,
    on_started: Callable[[], None] | None = None,
) -> Starlette:
    """The app for a handler (None: the agent alone, as a sidecar) and its agent (None: no models).

    With `shutdown`, `/readyz` answers 503 from SIGTERM on and `on_shutdown` is bounded by its deadline.
    `info` answers `GET /info` (agent/api/info.py); it runs on a worker thread, as it may call TF Serving.
    `status` replaces the agent's answers (a serving process asks the replica's agent), `requests`
    records the requests to `/` (default: the agent's metrics), `on_started` runs once the server serves.
    """
    # A serving process gives `status` and `requests`: it records nothing else (its metrics are the agent's).
    metrics = agent.metrics if agent is not None else Metrics() if status is None or requests is None else None
    replica = status or _agent_status(agent, metrics or Metrics(), shutdown, info)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        reason = replica.unready_because()
        if reason is None:
            return PlainTextResponse("ready")
        return PlainTextResponse(reason, 503)

    async def models(request: Request) -> Response:
        # ?model=NAME: that model only (a `dir` may hold 10,000); on a thread: a serving process asks its agent
        model = request.query_params.get("model")
        return JSONResponse(await anyio.to_thread.run_sync(replica.models, model))

    async def model_info(_: Request) -> Response:
        return JSONResponse(await anyio.to_thread.run_sync(replica.info))

    async def exposition(_: Request) -> Response:
        body = await anyio.to_thread.run_sync(replica.exposition)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if on_started is not None:
            on_started()
        yield
        await _stop(on_shutdown, shutdown)

    # `/` first: the API's requests are matched by the first route tried.
    recorder = requests or metrics
    endpoint = HandlerEndpoint(handler, threads, recorder) if handler is not None and recorder else None
    routes = [Route("/", endpoint)] if endpoint is not None else []
    routes += [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/info", model_info),
        Route("/models", models),
        Route("/metrics", exposition),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _agent_status(
    agent: Agent | None, metrics: Metrics, shutdown: Shutdown | None, info: Callable[[], dict[str, Any]] | None
) -> AgentStatus:
    status = AgentStatus(agent, metrics, shutdown, info)
    if agent is not None:
        metrics.track_replica_state(lambda: (agent.index.snapshot(), status.unready_because() is None))
    return status


async def _stop(on_shutdown: Callable[[], None] | None, shutdown: Shutdown | None) -> None:
    if on_shutdown is None:
        return
    if shutdown is None:
        await anyio.to_thread.run_sync(on_shutdown)
    else:
        await anyio.to_thread.run_sync(shutdown.stop_within, on_shutdown)
