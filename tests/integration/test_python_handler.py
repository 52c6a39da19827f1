"""The Python handler served by `reloader serve` on LocalStack S3, checked through HTTP."""

from __future__ import annotations

import pytest

from tests.fakes import Traffic
from tests.support import Models, api_spec, prediction, wait_until

pytestmark = pytest.mark.localstack


def test_versions_are_added_updated_in_place_and_removed(serve, s3_client, bucket):
    # GIVEN a model with version 1, served
    models = Models(s3_client, bucket)
    models.put_version("models/iris", 1, tag=1.0)
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/models/iris"})))
    assert prediction(server) == 1.0

    # WHEN version 2 is uploaded THEN latest is 2 and version 1 stays addressable
    models.put_version("models/iris", 2, tag=2.0)
    wait_until(lambda: prediction(server) == 2.0, what="version 2 served")
    assert prediction(server, version=1) == 1.0
    assert prediction(server, version="2") == 2.0

    # WHEN version 2 is updated in place (same key, new content) THEN it is reloaded
    models.put_version("models/iris", 2, tag=2.5)
    wait_until(lambda: prediction(server) == 2.5, what="version 2 reloaded")

    # WHEN version 2 is removed THEN latest is 1 again and version 2 answers 404
    models.delete_prefix("models/iris/2/")
    wait_until(lambda: prediction(server) == 1.0, what="back to version 1")
    missing = server.post({}, version=2)
    assert missing.status_code == 404
    assert "no version 2" in missing.json()["error"]
    assert server.version("test-api")["loaded"] == [1]


def test_a_non_versioned_model_is_served_as_version_1(serve, s3_client, bucket):
    # GIVEN files directly under the model prefix
    Models(s3_client, bucket).put_version("flat/model", None, tag=7.0)
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/flat/model/"})))
    # THEN it answers as version 1
    assert prediction(server) == 7.0
    assert prediction(server, version=1) == 7.0
    assert server.version("test-api")["loaded"] == [1]


def test_paths_serve_two_models_by_name(serve, s3_client, bucket):
    models = Models(s3_client, bucket)
    models.put_version("a", 1, tag=1.0)
    models.put_version("b", 3, tag=3.0)
    paths = [{"name": "alpha", "path": f"s3://{bucket}/a"}, {"name": "beta", "path": f"s3://{bucket}/b"}]
    server = serve.start(serve.spec(api_spec({"paths": paths})))
    assert prediction(server, model="alpha") == 1.0
    assert prediction(server, model="beta") == 3.0
    # a name is required with several models; an unknown one is a 404 that says what is loaded
    unnamed = server.post({})
    assert unnamed.status_code == 404 and "model_name is required" in unnamed.json()["error"]
    unknown = server.post({}, model="gamma")
    assert unknown.status_code == 404 and "alpha" in unknown.json()["error"]


def test_dir_mode_follows_models_appearing_and_disappearing(serve, s3_client, bucket):
    models = Models(s3_client, bucket)
    models.put_version("zoo/cat", 1, tag=1.0)
    server = serve.start(serve.spec(api_spec({"dir": f"s3://{bucket}/zoo"})))
    assert prediction(server, model="cat") == 1.0
    # WHEN a model folder appears THEN it is served; WHEN one disappears THEN it is gone
    models.put_version("zoo/dog", 4, tag=4.0)
    wait_until(lambda: prediction(server, model="dog") == 4.0, what="dog served")
    models.delete_prefix("zoo/cat/")
    wait_until(lambda: server.post({}, model="cat").status_code == 404, what="cat gone")
    assert sorted(server.models()) == ["dog"]


def test_a_failing_load_keeps_the_previous_version_serving(serve, s3_client, bucket):
    models = Models(s3_client, bucket)
    models.put_version("m", 2, tag=2.0)
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading={"retry_backoff": 0.2})))
    assert prediction(server) == 2.0

    # WHEN version 3's load_model raises
    models.put_version("m", 3, tag=3.0, extra={"FAIL": b"weights are corrupt"})

    def failed() -> dict | None:
        status = server.version("test-api")["versions"].get("3", {})
        return status if status.get("state") == "failed" else None

    # THEN /models shows version 3 failed with the error, and version 2 keeps serving
    status = wait_until(failed, what="version 3 failed")
    assert "weights are corrupt" in status["error"]
    assert prediction(server) == 2.0
    assert "load_model failed" in server.log()

    # WHEN a fixed version 3 replaces it THEN it loads
    s3_client.delete_object(Bucket=bucket, Key="m/3/FAIL")
    wait_until(lambda: prediction(server) == 3.0, what="fixed version 3 served")
    served = server.version("test-api")["versions"]["3"]
    assert served["state"] == "ready" and served["error"] is None

    # WHEN version 3 is then updated in place with a broken copy
    models.put_version("m", 3, tag=3.5, extra={"FAIL": b"the update is corrupt"})

    def update_failed() -> dict | None:
        status = server.version("test-api")["versions"]["3"]
        return status if status["error"] and "the update is corrupt" in status["error"] else None

    # THEN /models shows version 3 still ready with the content that serves, the update's error beside it
    status = wait_until(update_failed, what="the failed update of version 3 shown")
    assert status["state"] == "ready" and status["fingerprint"] == served["fingerprint"]
    assert "update in place" in status["error"]
    assert prediction(server) == 3.0


def test_a_failing_load_logs_its_traceback_once_not_on_every_retry(serve, s3_client, bucket):
    # GIVEN a version whose load_model always raises, retried quickly
    Models(s3_client, bucket).put_version("m", 1, tag=1.0, extra={"FAIL": b"always broken"})
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading={"retry_backoff": 0.05})))
    # WHEN it has been retried several times
    wait_until(lambda: server.version("test-api")["versions"]["1"]["attempts"] >= 4, what="four attempts")
    # THEN the traceback was logged once
    assert server.log().count("load_model failed for test-api version 1") == 1
    assert server.log().count("Traceback") == 1


def test_a_key_escaping_the_model_folder_is_refused(serve, s3_client, bucket, tmp_path):
    # GIVEN a version whose listing holds a key with '..' segments
    models = Models(s3_client, bucket)
    models.put_version("m", 1, tag=1.0)
    escape = "../../../../escaped.txt"
    models.put_version("m", 2, tag=2.0, extra={escape: b"owned"})
    # the store sits deep enough in tmp_path that the key, resolved from anywhere in the store, lands in tmp_path
    store = tmp_path / "1" / "2" / "3" / "4" / "5" / "store"
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading={"model_dir": str(store)})))
    # THEN nothing was written outside the store: not where the key resolves from version 2's folder, nor anywhere
    assert not (store / "test-api" / "2" / escape).resolve().exists()
    assert [p for p in tmp_path.rglob("escaped.txt")] == []
    assert all(p.is_relative_to(store) for p in store.rglob("*"))
    # and version 2 is refused with a clear error while version 1 serves
    status = server.version("test-api")["versions"]["2"]
    assert status["state"] == "waiting" and "refused" in status["error"] and ".." in status["error"]
    assert prediction(server) == 1.0


def test_requests_never_fail_during_reloads(serve, s3_client, bucket):
    # GIVEN a served model whose versions hold several files, uploaded MANIFEST first and the ready marker
    # last: the handler refuses a folder missing a file the MANIFEST names, so loading a partial listing
    # would show as a failed load
    models = Models(s3_client, bucket)
    parts = {f"part-{i}.bin": bytes(20_000) for i in range(5)}
    manifest = {"MANIFEST": " ".join(parts).encode(), **parts}
    models.put_version("m", 1, tag=1.0, extra=manifest, marker="_READY")
    reloading = {"interval": 0.05, "ready_marker": "_READY"}
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/m"}, threads_per_process=4, reloading=reloading)))
    # WHEN ten reloads happen (five new versions, each then updated in place) while four clients send requests
    with Traffic.http(server.url, threads=4, failed=lambda answer: bool(answer.value.json()["missing"])) as traffic:
        for round_ in range(10):
            tag, version = 10.0 + round_, 2 + round_ // 2
            models.put_version("m", version, tag=tag, extra=manifest, marker="_READY")
            wait_until(
                lambda tag=tag, version=version: prediction(server, version=version) == tag, what=f"reload {round_}"
            )
    # THEN no request failed, every answer came from a complete version, and no partial listing was loaded
    assert traffic.failures() == []
    answers = [answer.value.json()["prediction"] for answer in traffic.answers if answer.value is not None]
    assert len(answers) > 40
    assert set(answers) <= {1.0, *(10.0 + r for r in range(10))}
    assert "load_model failed" not in server.log()
    assert all(status["state"] == "ready" for status in server.version("test-api")["versions"].values())


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        pytest.param(
            lambda api: api["handler"]["multi_model_reloading"].update(dir="s3://b/x"),
            "handler.multi_model_reloading",
            "exactly one of",
            id="path-and-dir",
        ),
        pytest.param(lambda api: api["handler"].update(typo_field=1), "handler.typo_field", "unknown field", id="typo"),
        pytest.param(
            lambda api: api["handler"].update(processes_per_replica=0),
            "processes_per_replica",
            "greater than or equal to 1",
            id="processes",
        ),
        pytest.param(
            lambda api: api["handler"].update(type="onnx"),
            "handler.type",
            "'python' or 'tensorflow'",
            id="handler-type",
        ),
        pytest.param(
            lambda api: api["handler"]["multi_model_reloading"].update(path="ftp://x/y"),
            "handler.multi_model_reloading.path",
            "s3://bucket/prefix",
            id="bad-path",
        ),
        pytest.param(
            lambda api: api["handler"].update(multi_model_reloading={"paths": [{"name": "m", "path": "http://x/y"}]}),
            "handler.multi_model_reloading.paths[0].path",
            "s3://bucket/prefix",
            id="bad-path-in-paths",
        ),
    ],
)
def test_an_invalid_spec_exits_non_zero_naming_the_field(serve, change, field, words):
    api = api_spec({"path": "s3://bucket/model"})
    change(api)
    result = serve.run("serve", str(serve.spec(api)), "--port", "1")
    assert result.returncode == 2
    assert field in result.stderr and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_handler_without_load_model_is_refused_before_serving(serve, tmp_path):
    handler = tmp_path / "handler.py"
    handler.write_text(
        "class Handler:\n"
        "    def __init__(self, config):\n        pass\n"
        "    def handle_post(self, payload):\n        return payload\n"
    )
    api = api_spec({"path": "s3://bucket/model"})
    api["handler"]["path"] = str(handler)
    result = serve.run("serve", str(serve.spec(api)), "--port", "1")
    assert result.returncode == 2
    assert "load_model" in result.stderr


def test_a_handler_whose_constructor_raises_is_reported_clearly(serve, tmp_path):
    # GIVEN a Handler whose __init__ raises
    handler = tmp_path / "handler.py"
    handler.write_text(
        "class Handler:\n"
        "    def __init__(self, config):\n        raise KeyError('api_key')\n"
        "    def handle_post(self, payload):\n        return payload\n"
    )
    api = {"name": "plain", "kind": "RealtimeAPI", "handler": {"type": "python", "path": str(handler)}}
    # WHEN it is served
    result = serve.run("serve", str(serve.spec(api)), "--port", "1")
    # THEN the process exits non-zero with one line naming the file, the class, the exception and where it was raised
    assert result.returncode != 0
    expected = f"reloader: handler: Handler.__init__ in {handler} raised KeyError: 'api_key' at {handler}:3"
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_info_lists_each_models_versions_in_s3_and_loaded_as_cortex_did(serve, s3_client, bucket):
    # GIVEN two models: iris with a good version 1 and a broken version 2, wine with version 5
    models = Models(s3_client, bucket)
    models.put_version("m/iris", 1, tag=1.0)
    models.put_version("m/iris", 2, tag=2.0, extra={"FAIL": b"broken on purpose"})
    models.put_version("m/wine", 5, tag=5.0)
    server = serve.start(serve.spec(api_spec({"dir": f"s3://{bucket}/m/"})))

    # WHEN /info is asked THEN each model lists its versions in S3, those loaded and the latest
    metadata = server.http.get("/info").json()["model_metadata"]
    assert {name: {k: v for k, v in m.items() if k != "timestamps"} for name, m in metadata.items()} == {
        "iris": {"versions": ["1", "2"], "loaded": ["1"], "latest": "1"},
        "wine": {"versions": ["5"], "loaded": ["5"], "latest": "5"},
    }
    loaded_at, not_loaded = metadata["iris"]["timestamps"]
    assert isinstance(loaded_at, int) and not_loaded is None

    # WHEN version 3 of iris arrives THEN /info shows it loaded and latest
    models.put_version("m/iris", 3, tag=3.0)
    wait_until(lambda: server.http.get("/info").json()["model_metadata"]["iris"]["latest"] == "3", what="v3 in /info")
    assert server.http.get("/info").json()["model_metadata"]["iris"]["loaded"] == ["1", "3"]
