"""The two servers `bench/serving.py` compares, doing the same work per request.

- `Handler`: a Cortex 0.35 Python handler, served by `reloader serve`; its spec's `config.work`
  says which work (`trivial` or `forest`), its model is a pickled scikit-learn forest.
- `bare_app()`: a bare Starlette app doing the same work in a sync function through
  `run_in_threadpool`, with anyio's thread limit set as `threads_per_process` sets ours.
  `python -m bench.serving_app --work forest --model PATH --port N` serves it with uvicorn,
  configured as `reloader serve` configures it; `--workers N` runs N uvicorn worker processes
  (uvicorn's own `--workers`: spawned, sharing the socket the parent bound).
"""

from __future__ import annotations

import argparse
import os
import pickle
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PAYLOAD = {"features": [5.1, 3.5, 1.4, 0.2]}


def trivial(estimator: Any, payload: Any) -> dict[str, Any]:
    return {"received": len(payload["features"])}


def forest(estimator: Any, payload: Any) -> dict[str, Any]:
    return {"label": int(estimator.predict([payload["features"]])[0])}


WORK: dict[str, Callable[[Any, Any], dict[str, Any]]] = {"trivial": trivial, "forest": forest}


def load(model_path: str | Path) -> Any:
    with open(Path(model_path) / "model.pkl", "rb") as file:
        return pickle.load(file)


class Handler:
    """What `reloader serve` runs: the same work, the model from `model_client`."""

    def __init__(self, config: dict[str, Any], model_client: Any) -> None:
        self.work = WORK[config["work"]]
        self.client = model_client

    def load_model(self, model_path: str) -> Any:
        return load(model_path)

    def handle_post(self, payload: Any) -> dict[str, Any]:
        return self.work(self.client.get_model(), payload)


def bare_app(work: str, model_path: Path, threads: int) -> Starlette:
    estimator = load(model_path)
    function = WORK[work]

    def run(payload: Any) -> dict[str, Any]:
        return function(estimator, payload)

    async def endpoint(request: Request) -> Response:
        payload = await request.json()
        return JSONResponse(await run_in_threadpool(run, payload))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    return Starlette(routes=[Route("/", endpoint, methods=["POST"])], lifespan=lifespan)


def app_from_environment() -> Starlette:
    """The app of one of uvicorn's worker processes (`--workers` above 1), told its work by `main`."""
    return bare_app(os.environ["BENCH_WORK"], Path(os.environ["BENCH_MODEL"]), int(os.environ["BENCH_THREADS"]))


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the bare Starlette app of the serving benchmark.")
    parser.add_argument("--work", choices=sorted(WORK), required=True)
    parser.add_argument("--model", type=Path, required=True, help="a folder holding model.pkl")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1: in this one)")
    parser.add_argument(
        "--import-boto3", action="store_true",
        help="import boto3 as `reloader serve` does (urllib3 and botocore add 3 process-wide warnings filters, "
        "which `reloader serve` then removes and this app keeps)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.import_boto3:
        import boto3  # noqa: F401
    # As agent/cli.py runs `reloader serve`: uvicorn's defaults (http and loop "auto"), no access log.
    options: dict[str, Any] = {"host": "127.0.0.1", "port": args.port, "log_level": "warning", "access_log": False}
    if args.workers == 1:
        uvicorn.Server(uvicorn.Config(bare_app(args.work, args.model, args.threads), **options)).run()
        return
    # Spawned workers import the app by name; the environment carries its arguments to them.
    os.environ.update(BENCH_WORK=args.work, BENCH_MODEL=str(args.model.resolve()), BENCH_THREADS=str(args.threads))
    uvicorn.run("bench.serving_app:app_from_environment", factory=True, workers=args.workers, **options)


if __name__ == "__main__":
    main()
