"""Graceful shutdown of `reloader serve`, as Kubernetes drives it: SIGTERM, unready, drain, a bounded stop.

A local model folder serves here (no S3 needed): what is tested is the process's lifecycle.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.support import ServeFactory, api_spec, tagged_model, wait_until


def _version(root: Path, version: int, tag: float, slow: float | None = None) -> None:
    folder = root / str(version)
    folder.mkdir(parents=True)
    if slow is not None:
        (folder / "SLOW").write_text(str(slow))
    (folder / "model.pkl").write_bytes(tagged_model(tag))


def test_sigterm_turns_unready_keeps_serving_for_the_drain_and_exits_within_the_deadline(tmp_path):
    # GIVEN a served model whose version 2 is stuck in load_model (10 minutes), a 2 s drain and a 3 s deadline
    models = tmp_path / "models"
    _version(models, 1, tag=1.0)
    serve = ServeFactory(tmp_path, "http://127.0.0.1:9")  # no AWS call: the model is a local folder
    spec = serve.spec(api_spec({"path": str(models)}, reloading={"interval": 0.2}))
    server = serve.start(spec, env={"RELOADER_SHUTDOWN_DRAIN": "2", "RELOADER_SHUTDOWN_TIMEOUT": "3"})
    try:
        assert "reloader_ready 1.0" in server.http.get("/metrics").text
        _version(models, 2, tag=2.0, slow=600)
        wait_until(lambda: server.version("test-api")["versions"].get("2", {}).get("state") == "loading")

        # WHEN Kubernetes sends SIGTERM
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        # THEN /readyz answers 503 at once, and requests are still served during the drain
        wait_until(lambda: server.http.get("/readyz").status_code == 503, timeout=1, what="unready")
        assert server.http.get("/readyz").text == "shutting down"
        assert "reloader_ready 0.0" in server.http.get("/metrics").text
        assert server.post({}).json()["prediction"] == 1.0

        # AND the process is gone after drain + deadline, although load_model still sleeps
        server.process.wait(timeout=15)
        elapsed = time.monotonic() - signalled
        assert 2 <= elapsed < 2 + 3 + 3, elapsed
        assert "shutdown_timeout (3 s) passed with work still in flight" in server.log()
    finally:
        server.stop(signal.SIGKILL)


def test_without_work_in_flight_sigterm_stops_at_once(tmp_path):
    # GIVEN a served model and the default settings (no drain)
    models = tmp_path / "models"
    _version(models, 1, tag=1.0)
    serve = ServeFactory(tmp_path, "http://127.0.0.1:9")
    server = serve.start(serve.spec(api_spec({"path": str(models)})))
    # WHEN SIGTERM arrives THEN the process exits promptly and says nothing was abandoned
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=15)
    assert time.monotonic() - signalled < 5
    assert "work still in flight" not in server.log()
    try:
        httpx.get(f"{server.url}/healthz", timeout=1)
        raise AssertionError("still answering after exit")
    except httpx.TransportError:
        pass
