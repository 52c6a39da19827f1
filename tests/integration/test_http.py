"""The HTTP doors of `reloader serve`: dispatch as Cortex did, errors as a client needs them, the CLI tools."""

from __future__ import annotations

import pytest

from tests.support import ROOT, Models, api_spec, wait_until

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
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading={"settle": None})), wait_ready=False)

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
