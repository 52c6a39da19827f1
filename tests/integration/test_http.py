"""The HTTP doors of `reloader serve`: dispatch as Cortex did, errors as a client needs them, the CLI tools."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import ROOT, Models, api_spec, metric, reloader, wait_until

pytestmark = pytest.mark.localstack


@pytest.fixture
def echo(serve):
    api = {
        "name": "echo",
        "kind": "RealtimeAPI",
        "handler": {
            "type": "python",
            "path": str(ROOT / "tests/handlers/echo.py"),
            "config": {"greeting": "hi"},
            "env": {"ECHO_SETTING": "from env"},
            "python_path": str(ROOT / "tests/handlers/lib"),
        },
        "compute": {"cpu": 1},
    }
    return serve.start(serve.spec(api))


def test_bodies_and_results_travel_as_cortex_did(echo):
    as_json = echo.http.post("/", json={"a": 1}, headers={"x-test": "yes"})
    assert as_json.json() == {"payload": {"a": 1}, "type": "dict", "header": "yes"}
    as_text = echo.http.post("/", content="hello", headers={"content-type": "text/plain"})
    assert as_text.json()["type"] == "str"
    as_bytes = echo.http.post("/", content=b"\x01\x02", headers={"content-type": "application/octet-stream"})
    assert as_bytes.json()["type"] == "bytes"
    raw = echo.http.post("/?return=bytes", json={})
    assert raw.content == b"\x00raw" and raw.headers["content-type"] == "application/octet-stream"
    assert echo.http.post("/?return=text", json={}).text == "plain text"
    assert echo.http.get("/", params={"q": "x"}).json() == ["hi", "x", "from env", "from python_path"]
    assert echo.log().count("not applicable") == 1 and "compute" in echo.log()


def test_errors_say_what_went_wrong_without_leaking_internals(echo):
    invalid = echo.http.post("/", content=b"{not json", headers={"content-type": "application/json"})
    assert invalid.status_code == 400 and "invalid JSON" in invalid.json()["error"]
    missing = echo.http.put("/", json={})
    assert missing.status_code == 405 and "POST" in missing.json()["error"]
    crashed = echo.http.post("/?return=raise", json={})
    assert crashed.status_code == 500 and "secret" not in crashed.text
    assert "secret internal detail" in echo.log() and "Traceback" in echo.log()


def test_readyz_waits_for_the_initial_load_and_slow_models_do_not_hold_up_others(serve, s3_client, bucket):
    # GIVEN two models, one of which loads slowly
    models = Models(s3_client, bucket)
    models.put_version("slow", 1, tag=1.0, extra={"SLOW": b"3"})
    models.put_version("fast", 1, tag=2.0)
    paths = [{"name": "slow", "path": f"s3://{bucket}/slow"}, {"name": "fast", "path": f"s3://{bucket}/fast"}]
    server = serve.start(serve.spec(api_spec({"paths": paths})), wait_ready=False)
    # THEN the process is healthy at once, ready only once both are loaded
    wait_until(lambda: server.http.get("/healthz").status_code == 200, what="healthz")
    assert server.http.get("/readyz").status_code == 503
    wait_until(lambda: server.http.get("/readyz").status_code == 200, timeout=30, what="readyz")
    # WHEN a slow version and a fast version arrive together THEN the fast one does not wait for the slow one
    models.put_version("slow", 2, tag=3.0, extra={"SLOW": b"5"})
    models.put_version("fast", 2, tag=4.0)
    wait_until(lambda: server.post({}, model="fast").json()["prediction"] == 4.0, what="fast model reloaded")
    assert server.version("slow")["versions"]["2"]["state"] == "loading"
    assert server.post({}, model="slow").json()["prediction"] == 1.0


def test_readyz_waits_for_versions_still_settling_at_start(serve, s3_client, bucket):
    # GIVEN a version written just before start, and the default settle window (1 s)
    Models(s3_client, bucket).put_version("m", 1, tag=1.0)
    server = serve.start(
        serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading={"settle": None})), wait_ready=False
    )

    # THEN /models shows it waiting while it settles, and /readyz says not ready meanwhile
    def settling() -> dict | None:
        status = server.version("test-api").get("versions", {}).get("1", {})
        return status if status.get("state") == "waiting" else None

    status = wait_until(settling, interval=0.02, what="version 1 settling")
    assert status["error"].startswith("settling")
    # WHEN /readyz answers 200 THEN the version is served at once: no 404 after ready
    wait_until(lambda: server.http.get("/readyz").status_code == 200, interval=0.02, what="readyz")
    assert server.post({}).json()["prediction"] == 1.0
    assert server.version("test-api")["versions"]["1"]["state"] == "ready"


def test_push_uploads_a_version_with_its_marker_last_and_status_shows_it(serve, s3_client, bucket, tmp_path):
    # GIVEN a model folder on disk
    folder = tmp_path / "v5"
    (folder / "sub").mkdir(parents=True)
    from tests.support import tagged_model

    (folder / "model.pkl").write_bytes(tagged_model(5.0))
    (folder / "sub" / "extra.bin").write_bytes(b"x" * 1000)
    # WHEN it is pushed
    pushed = serve.run("push", str(folder), f"s3://{bucket}/models/m/", "--version", "5")
    assert pushed.returncode == 0, pushed.stderr
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="models/m/")["Contents"]
    keys = {item["Key"]: item["LastModified"] for item in listed}
    # THEN every file is there, and the marker was written last
    assert set(keys) == {"models/m/5/model.pkl", "models/m/5/sub/extra.bin", "models/m/5/_READY"}
    assert keys["models/m/5/_READY"] >= max(keys.values())
    # and a server in marker mode serves it, which `reloader status` shows
    server = serve.start(
        serve.spec(api_spec({"path": f"s3://{bucket}/models/m"}, reloading={"ready_marker": "_READY"}))
    )
    assert server.post({}).json()["prediction"] == 5.0
    status = serve.run("status", "--url", server.url)
    assert status.returncode == 0
    assert "5 (latest)" in status.stdout and "ready" in status.stdout


def test_push_refuses_what_it_cannot_upload(serve, tmp_path):
    missing = serve.run("push", str(tmp_path / "nope"), "s3://bucket/m/")
    assert missing.returncode == 2 and "expected a folder" in missing.stderr
    (tmp_path / "f").mkdir()
    not_s3 = serve.run("push", str(tmp_path / "f"), "/local/path")
    assert not_s3.returncode == 2 and "expected s3://bucket/prefix/model/" in not_s3.stderr
    for version in ("-1", "1.5", "x"):
        bad_version = serve.run("push", str(tmp_path / "f"), "s3://bucket/m/", "--version", version)
        assert bad_version.returncode == 2
        assert f"--version: expected a non-negative integer, found '{version}'" in bad_version.stderr


def handler_api(serve, source: str, **handler) -> dict:
    """An API without models whose Handler is `source`, written next to the spec."""
    path = serve.tmp_path / "handler.py"
    path.write_text(source)
    return {"name": "plain", "kind": "RealtimeAPI", "handler": {"type": "python", "path": str(path), **handler}}


LOGGING_HANDLER = """
import logging

log = logging.getLogger("my_handler")


class Handler:
    def __init__(self, config):
        pass

    def handle_post(self, payload):
        log.debug("debug line from the handler")
        log.info("info line from the handler")
        return "ok"
"""


@pytest.mark.parametrize(("level", "debug_shown"), [("debug", True), ("info", False)])
def test_log_level_is_honoured(serve, level, debug_shown):
    # GIVEN a handler that logs at debug and info, served with handler.log_level
    server = serve.start(serve.spec(handler_api(serve, LOGGING_HANDLER, log_level=level)))
    # WHEN it handles a request
    assert server.post({}).text == "ok"
    wait_until(lambda: "info line from the handler" in server.log(), what="the info line")
    # THEN its debug line is logged only at log_level debug
    assert ("debug line from the handler" in server.log()) is debug_shown


CONCURRENCY_HANDLER = """
import threading


class Handler:
    def __init__(self, config):
        self.together = config["together"]
        self.hold = config["hold"]
        self.inside = threading.Condition()
        self.active = 0
        self.peak = 0

    def handle_post(self, payload):
        with self.inside:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.inside.notify_all()
            # stay until `together` requests have been inside at once (or `hold` seconds passed)
            self.inside.wait_for(lambda: self.peak >= self.together, timeout=self.hold)
            self.active -= 1
        return "ok"

    def handle_get(self):
        return {"peak": self.peak}
"""


@pytest.mark.parametrize(
    ("threads", "config"),
    [
        pytest.param(1, {"together": 4, "hold": 0.3}, id="one-thread"),
        pytest.param(4, {"together": 4, "hold": 30}, id="four-threads"),
    ],
)
def test_threads_per_process_bounds_how_many_requests_run_the_handler_at_once(serve, threads, config):
    from concurrent.futures import ThreadPoolExecutor

    # GIVEN a handler that records how many requests run it at once, served with threads_per_process
    api = handler_api(serve, CONCURRENCY_HANDLER, threads_per_process=threads, config=config)
    server = serve.start(serve.spec(api))
    # WHEN eight requests arrive together
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: server.post({}).status_code, range(8)))
    # THEN all succeed, and at most threads_per_process (and, with 8 waiting, exactly that many) ran at once
    assert codes == [200] * 8
    assert server.http.get("/").json() == {"peak": threads}


def test_push_without_a_version_uses_the_current_time(serve, s3_client, bucket, tmp_path):
    import time

    # GIVEN a model folder
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"weights")
    # WHEN it is pushed without --version
    before = int(time.time())
    pushed = serve.run("push", str(folder), f"s3://{bucket}/models/m/")
    after = int(time.time())
    assert pushed.returncode == 0, pushed.stderr
    # THEN its version is the current time in seconds
    keys = [item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket, Prefix="models/m/")["Contents"]]
    versions = {int(key.split("/")[2]) for key in keys}
    assert len(versions) == 1
    assert before <= versions.pop() <= after


def test_push_on_a_terminal_shows_progress_without_failing(serve, s3_client, bucket, tmp_path):
    import fcntl
    import os
    import pty
    import struct
    import termios

    # GIVEN a model folder, and a terminal on stderr (the progress bar shows only there)
    folder = tmp_path / "model"
    folder.mkdir()
    for i in range(3):
        (folder / f"part-{i}.bin").write_bytes(bytes(300_000))
    terminal, terminal_side = pty.openpty()
    fcntl.ioctl(terminal_side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows, 100 columns
    try:
        # WHEN it is pushed
        process = subprocess.Popen(
            [reloader(), "push", str(folder), f"s3://{bucket}/m/", "--version", "3"],
            stdout=subprocess.PIPE,
            stderr=terminal_side,
            env={**os.environ, "AWS_ENDPOINT_URL": serve.endpoint},
        )
        os.close(terminal_side)
        shown = b""
        while True:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # the terminal closed: the process exited
                break
            if not chunk:
                break
            shown += chunk
        stdout, _ = process.communicate(timeout=60)
    finally:
        os.close(terminal)
    # THEN it succeeds, drew a progress bar on the terminal, and uploaded everything
    assert process.returncode == 0, shown.decode(errors="replace")
    assert b"version 3" in shown and b"Traceback" not in shown
    assert b"pushed 3 file(s)" in stdout
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="m/3/")["Contents"]
    assert len(listed) == 4


def test_a_result_that_cannot_be_answered_is_a_500_saying_what_was_expected(echo):
    answer = echo.http.post("/?return=unanswerable", json={})
    assert answer.status_code == 500
    assert "handle_post returned a dict that cannot be answered" in answer.json()["error"]
    assert "JSON-serialisable" in answer.json()["error"]
    assert "not JSON serializable" in echo.log()


def test_requests_are_counted_and_timed_by_status_code(echo):
    # GIVEN answers of four kinds: 200 (twice), 400, 405 and 500
    for _ in range(2):
        assert echo.http.post("/", json={"a": 1}).status_code == 200
    assert echo.http.post("/", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert echo.http.put("/", json={}).status_code == 405
    assert echo.http.post("/?return=raise", json={}).status_code == 500
    assert echo.http.get("/healthz").status_code == 200  # not the API: not counted
    # THEN /metrics counts them per status code, with their time
    name = "reloader_http_request_duration_seconds"
    counts = {code: metric(echo, f"{name}_count", status_code=code) for code in ("200", "400", "405", "500")}
    assert counts == {"200": 2, "400": 1, "405": 1, "500": 1}
    assert 0 < metric(echo, f"{name}_sum", status_code="200") < 10
    assert metric(echo, f"{name}_bucket", status_code="200", le="+Inf") == 2


@pytest.mark.parametrize(
    ("hide", "stack"),
    [
        pytest.param((), "uvicorn with httptools and uvloop", id="uvicorn[standard]"),
        pytest.param(("httptools", "uvloop"), "uvicorn with h11 and asyncio", id="without httptools and uvloop"),
    ],
)
def test_serves_on_uvicorn_standard_and_falls_back_where_it_cannot_install(serve, hide, stack):
    # GIVEN the echo API, with httptools and uvloop importable or not (uvloop has no Windows build, say)
    handlers = ROOT / "tests" / "handlers"
    handler = {"type": "python", "path": str(handlers / "echo.py"), "python_path": str(handlers / "lib")}
    api = {"name": "echo", "kind": "RealtimeAPI", "handler": handler}
    server = serve.start(serve.spec(api), hide=hide)
    # THEN it serves, and says on which stack
    assert server.http.post("/", json={"a": 1}).json()["payload"] == {"a": 1}
    assert stack in server.log()
