"""The HTTP server: `/` dispatches to the Handler's `handle_<method>`, plus health, `/models` and `/metrics`.

Handler methods are plain (blocking) functions, run on worker threads, at most
`threads_per_process` at once, as Cortex ran them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from agent.api.handler import HTTP_METHODS, call_with_declared
from agent.api.shutdown import Shutdown
from agent.domain.errors import ModelNotFoundError, ModelUnavailableError
from agent.engine.agent import Agent

log = logging.getLogger(__name__)


class HandlerEndpoint:
    """`/`: the request's method goes to `handle_<method>` with the arguments it declares."""

    def __init__(self, handler: Any, threads: int) -> None:
        self._handler = handler
        self._limiter = anyio.CapacityLimiter(threads)
        self.methods = [m.upper() for m in HTTP_METHODS if callable(getattr(handler, f"handle_{m}", None))]

    async def handle(self, request: Request) -> Response:
        method = getattr(self._handler, f"handle_{request.method.lower()}", None)
        if method is None:
            return JSONResponse({"error": f"{request.method} is not handled; allowed: {self.methods}"}, 405)
        try:
            payload = await _payload(request)
        except ValueError as error:
            return JSONResponse({"error": str(error)}, 400)
        arguments = {"payload": payload, "query_params": dict(request.query_params), "headers": dict(request.headers)}
        try:
            result = await anyio.to_thread.run_sync(call_with_declared, method, arguments, limiter=self._limiter)
        except ModelNotFoundError as error:
            return JSONResponse({"error": str(error)}, 404)
        except ModelUnavailableError as error:  # a cold load failed or is still running (caching)
            return JSONResponse({"error": str(error)}, 503, headers={"Retry-After": "1"})
        except Exception:
            log.exception("handle_%s raised", request.method.lower())
            return JSONResponse({"error": "the handler raised an exception; see the server log"}, 500)
        return _response(result)


def create_app(
    handler: Any,
    agent: Agent | None,
    threads: int = 1,
    on_shutdown: Callable[[], None] | None = None,
    shutdown: Shutdown | None = None,
) -> Starlette:
    """The app for a handler (None: the agent alone, as a sidecar) and its agent (None: no models).

    With `shutdown`, `/readyz` answers 503 from SIGTERM on and `on_shutdown` is bounded by its deadline."""

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

    async def metrics(_: Request) -> Response:
        body = agent.metrics.exposition() if agent else b""
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await _stop(on_shutdown, shutdown)

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/models", models),
        Route("/metrics", metrics),
    ]
    if handler is not None:
        routes.append(
            Route("/", HandlerEndpoint(handler, threads).handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        )
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


async def _payload(request: Request) -> Any:
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or (content_type.endswith("+json")):
        if not body:
            return None
        try:
            return json.loads(body)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"expected a JSON body (Content-Type is {content_type}), found invalid JSON: {error}"
            ) from None
    if content_type.startswith("text/"):
        return body.decode(errors="replace")
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await request.form()
    return body


def _response(result: Any) -> Response:
    if isinstance(result, Response):
        return result
    if isinstance(result, bytes):
        return Response(result, media_type="application/octet-stream")
    if isinstance(result, str):
        return PlainTextResponse(result)
    return JSONResponse(_jsonable(result))


def _jsonable(value: Any) -> Any:
    # numpy scalars and arrays, as sklearn predictions are, answer as plain JSON
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
