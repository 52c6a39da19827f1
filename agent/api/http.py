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
    handler: Any, agent: Agent | None, threads: int = 1, on_shutdown: Callable[[], None] | None = None
) -> Starlette:
    """The app for a handler (None: the agent alone, as a sidecar) and its agent (None: no models)."""

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        if agent is None or agent.ready:
            return PlainTextResponse("ready")
        return PlainTextResponse("initial load in progress", 503)

    async def models(request: Request) -> Response:
        # ?model=NAME: that model only (a `dir` may hold 10,000)
        return JSONResponse(agent.index.snapshot(request.query_params.get("model")) if agent else {})

    async def metrics(_: Request) -> Response:
        body = agent.metrics.exposition() if agent else b""
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await anyio.to_thread.run_sync(on_shutdown)

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
