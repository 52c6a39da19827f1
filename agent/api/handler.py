"""The user's Handler: imported from the spec's `handler.path`, built and called as Cortex 0.35 did.

Constructor and `handle_<method>` arguments are passed by name, only those the method
declares (`config`, `model_client` / `tensorflow_client`; `payload`, `query_params`, `headers`).
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from agent.domain.errors import ReloaderError, SpecError

log = logging.getLogger(__name__)

HTTP_METHODS = ("post", "get", "put", "patch", "delete")


def import_handler_class(path: Path, python_path: Path, env: dict[str, str]) -> type:
    """Import `Handler` from the file at `path`, with `env` set and `python_path` importable."""
    os.environ.update(env)
    if str(python_path) not in sys.path:
        sys.path.insert(0, str(python_path))
    if not path.is_file():
        raise SpecError(f"handler.path: expected a Python file, found nothing at {path}")
    spec = importlib.util.spec_from_file_location(f"reloader_handler_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise SpecError(f"handler.path: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise SpecError(f"handler.path: importing {path} raised {type(error).__name__}: {error}") from error
    handler = getattr(module, "Handler", None)
    if not inspect.isclass(handler):
        raise SpecError(f"handler.path: expected a class named Handler in {path}, found none")
    return handler


def check_handler(handler_class: type, needs_load_model: bool, http: bool = True) -> None:
    """`http` False: a gRPC API, whose methods are the RPCs' (checked against its proto instead)."""
    if needs_load_model and not callable(getattr(handler_class, "load_model", None)):
        raise SpecError(
            "handler: multi_model_reloading is set, so Handler must define load_model(self, model_path); "
            "found no load_model"
        )
    if http and not any(callable(getattr(handler_class, f"handle_{m}", None)) for m in HTTP_METHODS):
        raise SpecError("handler: expected Handler to define at least one of handle_post, handle_get, ...")


def declared_arguments(function: Callable[..., Any], names: Iterable[str]) -> frozenset[str]:
    """Which of `names` `function` declares (all of them when it takes **kwargs).

    Read once per function, when the handler is built: `inspect.signature` costs more than a
    trivial request, so it stays off the request path.
    """
    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return frozenset(names)
    return frozenset(name for name in names if name in parameters)


def call_with_declared(function: Callable[..., Any], available: dict[str, Any]) -> Any:
    """Call `function` with the keyword arguments it declares, from `available` (once: `Handler(...)`)."""
    return function(**{name: available[name] for name in declared_arguments(function, available)})


def construct_handler(handler_class: type, arguments: dict[str, Any], path: Path) -> Any:
    """`Handler(config, ...)`; an exception in the user's __init__ is reported by name and place, not as a
    traceback (ReloaderError)."""
    try:
        return call_with_declared(handler_class, arguments)
    except Exception as error:
        frames = traceback.extract_tb(error.__traceback__)
        where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        log.debug("Handler.__init__ raised", exc_info=True)
        raise ReloaderError(
            f"handler: {handler_class.__name__}.__init__ in {path} raised {type(error).__name__}: {error}{where}"
        ) from None
