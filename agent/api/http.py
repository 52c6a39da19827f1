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
from agent.engine.agent import Agent
from agent.metrics import Metrics


def create_app(
    handler: Any,
    agent: Agent | None,
    threads: int = 1,
    on_shutdown: Callable[[], None] | None = None,
    info: Callable[[], dict[str, Any]] | None = None,
) -> Starlette:
    """The app for a handler (None: the agent alone, as a sidecar) and its agent (None: no models).

    `info` answers `GET /info` (agent/api/info.py); it runs on a worker thread, as it may call TF Serving.
    """
    metrics = agent.metrics if agent is not None else Metrics()

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        if agent is None or agent.ready:
            return PlainTextResponse("ready")
        return PlainTextResponse("initial load in progress", 503)

    async def models(_: Request) -> Response:
        return JSONResponse(agent.registry.snapshot() if agent else {})

    async def model_info(_: Request) -> Response:
        return JSONResponse(await anyio.to_thread.run_sync(info) if info is not None else {"model_metadata": {}})

    async def exposition(_: Request) -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await anyio.to_thread.run_sync(on_shutdown)

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
