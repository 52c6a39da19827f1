"""`/`: the request's method goes to the Handler's `handle_<method>`, with the arguments it declares.

This is every request's path, so it does per request only what the request needs: which
arguments each method declares is read once, at start; the body is read and parsed only for a
method that declares `payload`; `query_params` and `headers` are Starlette's own read-only
mappings (as Cortex 0.35 passed them), not copies; a JSON result is serialised once. Handler
methods are plain (blocking) functions, run on worker threads, at most `threads_per_process`
at once, as Cortex ran them. A plain ASGI app rather than a Starlette endpoint function: one
wrapper fewer per request, and the time observed runs until the answer is sent.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from agent.api.handler import HTTP_METHODS, declared_arguments
from agent.domain.errors import ModelNotFoundError, ModelUnavailableError

log = logging.getLogger(__name__)


class RequestRecorder(Protocol):
    def http_request(self, status_code: int, seconds: float) -> None:
        """One request to `/` answered, on the event loop's thread (agent.metrics, or a serving process's)."""


REQUEST_ARGUMENTS = ("payload", "query_params", "headers")


@dataclass(frozen=True)
class HandlerMethod:
    """One `handle_<method>` and which request arguments it declares."""

    name: str
    function: Any
    payload: bool
    query_params: bool
    headers: bool

    @classmethod
    def of(cls, name: str, function: Any) -> HandlerMethod:
        names = declared_arguments(function, REQUEST_ARGUMENTS)
        return cls(name, function, "payload" in names, "query_params" in names, "headers" in names)


class HandlerEndpoint:
    def __init__(self, handler: Any, threads: int, metrics: RequestRecorder) -> None:
        self._threads = threads
        self._limiter: anyio.CapacityLimiter | None = None
        self._metrics = metrics
        self._methods = {
            method.upper(): HandlerMethod.of(f"handle_{method}", function)
            for method in HTTP_METHODS
            if callable(function := getattr(handler, f"handle_{method}", None))
        }
        self.methods = list(self._methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        response = await self._answer(Request(scope, receive))
        await response(scope, receive, send)
        self._metrics.http_request(response.status_code, time.perf_counter() - started)

    async def _answer(self, request: Request) -> Response:
        method = self._methods.get(request.scope["method"])
        if method is None:
            return JSONResponse({"error": f"{request.method} is not handled; allowed: {self.methods}"}, 405)
        if self._limiter is None:  # made on the event loop: anyio's own limiter, not the adapter made outside one
            self._limiter = anyio.CapacityLimiter(self._threads)
        arguments: dict[str, Any] = {}
        if method.payload:
            try:
                arguments["payload"] = await _payload(request)
            except ValueError as error:
                return JSONResponse({"error": str(error)}, 400)
        if method.query_params:
            arguments["query_params"] = request.query_params
        if method.headers:
            arguments["headers"] = request.headers
        try:
            result = await anyio.to_thread.run_sync(partial(method.function, **arguments), limiter=self._limiter)
        except Exception as error:
            return _error_response(method.name, error)
        return _answered(method.name, result)


def _error_response(name: str, error: Exception) -> Response:
    """A handler's exception as an answer (called in its `except`, so the traceback is logged)."""
    if isinstance(error, ModelNotFoundError):
        return JSONResponse({"error": str(error)}, 404)
    if isinstance(error, ModelUnavailableError):  # a cold load failed or is still running (caching)
        return JSONResponse({"error": str(error)}, 503, headers={"Retry-After": "1"})
    log.exception("%s raised", name)
    return JSONResponse({"error": "the handler raised an exception; see the server log"}, 500)


def _answered(name: str, result: Any) -> Response:
    try:
        return _response(result)
    except (TypeError, ValueError) as error:
        log.error("%s returned a %s that cannot be answered: %s", name, type(result).__name__, error)
        return JSONResponse(
            {
                "error": f"{name} returned a {type(result).__name__} that cannot be answered; expected "
                "JSON-serialisable values, str, bytes or a starlette Response; see the server log"
            },
            500,
        )


async def _payload(request: Request) -> Any:
    body = await request.body()
    content_type = _content_type(request.scope["headers"])
    if content_type != "application/json":  # the common case skips the parsing of parameters
        content_type = content_type.split(";", 1)[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
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


def _content_type(headers: list[tuple[bytes, bytes]]) -> str:
    """The Content-Type header, read from the raw ASGI headers (no header mapping built for it)."""
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1")
    return ""


def _response(result: Any) -> Response:
    if isinstance(result, Response):
        return result
    if isinstance(result, bytes):
        return Response(result, media_type="application/octet-stream")
    if isinstance(result, str):
        return PlainTextResponse(result)
    try:
        return JSONResponse(result)
    except TypeError:
        return JSONResponse(_jsonable(result))  # numpy values inside: converted only when plain JSON fails


def _jsonable(value: Any) -> Any:
    # numpy scalars and arrays, as sklearn predictions are, answer as plain JSON
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
