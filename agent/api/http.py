"""The HTTP server: `/` dispatches to the Handler's `handle_<method>` (agent/api/endpoint.py), plus health,
`/info`, `/models` and `/metrics`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from agent.api.endpoint import HandlerEndpoint
from agent.api.shutdown import Shutdown
from agent.engine.agent import Agent
from agent.metrics import Metrics


def create_app(
    handler: Any,
    agent: Agent | None,
    threads: int = 1,
    on_shutdown: Callable[[], None] | None = None,
    shutdown: Shutdown | None = None,
    info: Callable[[], dict[str, Any]] | None = None,
) -> Starlette:
    """The app for a handler (None: the agent alone, as a sidecar) and its agent (None: no models).

    With `shutdown`, `/readyz` answers 503 from SIGTERM on and `on_shutdown` is bounded by its deadline.
    `info` answers `GET /info` (agent/api/info.py); it runs on a worker thread, as it may call TF Serving.
    """
    metrics = agent.metrics if agent is not None else Metrics()

    def unready_because() -> str | None:
        return _unready_because(agent, shutdown)

    if agent is not None:
        agent.metrics.track_replica_state(lambda: (agent.index.snapshot(), unready_because() is None))

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        reason = unready_because()
        if reason is None:
            return PlainTextResponse("ready")
        return PlainTextResponse(reason, 503)

    async def models(request: Request) -> Response:
        # ?model=NAME: that model only (a `dir` may hold 10,000)
        return JSONResponse(agent.index.snapshot(request.query_params.get("model")) if agent else {})

    async def model_info(_: Request) -> Response:
        return JSONResponse(await anyio.to_thread.run_sync(info) if info is not None else {"model_metadata": {}})

    async def exposition(_: Request) -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await _stop(on_shutdown, shutdown)

    # `/` first: the API's requests are matched by the first route tried.
    routes = [Route("/", HandlerEndpoint(handler, threads, metrics))] if handler is not None else []
    routes += [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/info", model_info),
        Route("/models", models),
        Route("/metrics", exposition),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _unready_because(agent: Agent | None, shutdown: Shutdown | None) -> str | None:
    """Why `/readyz` answers 503 (and `reloader_ready` is 0), or None when ready."""
    if shutdown is not None and shutdown.begun:
        return "shutting down"
    if agent is not None and not agent.ready:
        return "initial load in progress"
    return None


async def _stop(on_shutdown: Callable[[], None] | None, shutdown: Shutdown | None) -> None:
    if on_shutdown is None:
        return
    if shutdown is None:
        await anyio.to_thread.run_sync(on_shutdown)
    else:
        await anyio.to_thread.run_sync(shutdown.stop_within, on_shutdown)
