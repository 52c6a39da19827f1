"""The TensorFlow handler on LocalStack S3, against a gRPC TF Serving that really loads the SavedModels.

The real TF Serving binary is not installable here: tests/tfserving/server.py stands in for it,
built on tensorflow-serving-api's own ModelService and PredictionService, run as a process of
its own so that it can be restarted. Skipped where the tensorflow extra is not installed.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

pytest.importorskip("tensorflow_serving")

from tests.fakes import Answer, Traffic
from tests.support import EXAMPLES, ROOT, Models, ServeFactory, Server, metric, wait_until
from tests.tfserving.process import TFServingProcess
from tests.tfserving.savedmodels import INPUT, SavedModels, files_of, save_graph_only, save_summer

pytestmark = pytest.mark.localstack

API = "test-api"
HttpTraffic = Traffic[dict[str, str], httpx.Response]


@pytest.fixture(scope="module")
def tfserving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TFServingProcess]:
    server = TFServingProcess(tmp_path_factory.mktemp("tfserving"), load_delay=0.5)
    server.start()
    yield server
    server.stop()


def tf_api(models: dict[str, Any], reloading: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Cortex RealtimeAPI spec for the test TensorFlow handler (tests/handlers/tf_scaler.py)."""
    return {
        "name": API,
        "kind": "RealtimeAPI",
        "handler": {
            "type": "tensorflow",
            "path": str(ROOT / "tests" / "handlers" / "tf_scaler.py"),
            "models": models,
            "threads_per_process": 8,
        },
        "reloading": {"interval": 0.5, "settle": 0, **(reloading or {})},
    }


def start(
    serve: ServeFactory,
    tfserving: TFServingProcess,
    model_dir: Path,
    api: dict[str, Any],
    command_name: str = "serve",
) -> Server:
    env = {**tfserving.env, "RELOADER_MODEL_DIR": str(model_dir)}
    return serve.start(serve.spec(api), env=env, command_name=command_name)


def y(server: Server, **params: Any) -> Any:
    response = server.post({"x": INPUT}, **params)
    assert response.status_code == 200, response.text
    return response.json()["y"]


def scaled(scale: float) -> list[float]:
    return [value * scale for value in INPUT[0]]  # flat, as Cortex's tensorflow_client returned outputs


def internal_folders(model_dir: Path, model: str) -> list[str]:
    folder = model_dir / model
    return sorted(entry.name for entry in folder.iterdir()) if folder.is_dir() else []


def predicting(server: Server, threads: int = 1, params: tuple[dict[str, str], ...] = ({},)) -> HttpTraffic:
    """Clients of the API predicting without pause, with the `params` in turn."""
    return Traffic.http(server.url, payload={"x": INPUT}, params=params, threads=threads)


def y_of(answer: Answer[dict[str, str], httpx.Response]) -> Any:
    assert answer.value is not None
    return answer.value.json()["y"]


def last_y(traffic: HttpTraffic, **params: str) -> Any:
    answer = traffic.last(params)
    return y_of(answer) if answer else None


def test_restarting_the_agent_keeps_tf_serving_serving(serve, tfserving, s3_client, bucket, tmp_path):
    # GIVEN two models kept in TF Serving by `reloader agent` (a sidecar), and clients of TF Serving itself
    models = SavedModels(s3_client, bucket, tmp_path)
    models.put("models/one", 1, scale=1.0)
    models.put("models/two", 1, scale=2.0)
    model_dir = tmp_path / "models"
    api = tf_api({"dir": f"s3://{bucket}/models"})
    agent = start(serve, tfserving, model_dir, api, "agent")
    served = {model: tfserving.available(model) for model in ("one", "two")}
    assert all(len(versions) == 1 for versions in served.values())
    # (/models shows the version number TF Serving serves each as: the one its direct clients ask for)
    assert agent.version("one")["versions"]["1"]["tfserving_version"] == served["one"][0]
    configs = tfserving.configs()
    folders = {model: internal_folders(model_dir, model) for model in served}

    with Traffic.calling(lambda model: tfserving.predict(model, INPUT), ["one", "two"]) as traffic:
        # WHEN the agent stops and starts again (TF Serving keeps running)
        agent.stop()
        restarted = start(serve, tfserving, model_dir, api, "agent")
        answered = len(traffic.answers)
        wait_until(lambda: len(traffic.answers) > answered + 10, what="predictions after the restart")
        wait_until(lambda: restarted.version("two")["loaded"] == [1])

    # THEN no prediction failed, nothing was loaded again, and the folders were taken over
    assert traffic.failures() == []
    assert {model: tfserving.available(model) for model in served} == served
    assert {model: internal_folders(model_dir, model) for model in served} == folders
    # AND the restarted agent sent one config, the one TF Serving already served
    assert tfserving.configs()[len(configs) :] == [configs[-1]]
    assert {str(model) for model in configs[-1]} >= {"one", "two"}


def test_a_new_version_serves_once_available_and_removing_it_falls_back(serve, tfserving, s3_client, bucket, tmp_path):
    # GIVEN version 1 of a SavedModel, served through TF Serving
    models = SavedModels(s3_client, bucket, tmp_path)
    models.put("models/scaler", 1, scale=1.0)
    model_dir = tmp_path / "models"
    server = start(serve, tfserving, model_dir, tf_api({"path": f"s3://{bucket}/models/scaler"}))
    assert y(server) == scaled(1.0)

    # WHEN version 2 is uploaded while requests for "latest" keep coming
    with predicting(server) as traffic:
        uploaded = time.time()
        models.put("models/scaler", 2, scale=2.0)
        wait_until(lambda: last_y(traffic) == scaled(2.0), what="version 2 served")

    # THEN no request failed, and the answers switched once from 1 to 2, after TF Serving had 2 AVAILABLE
    assert traffic.failures() == []
    ys = [y_of(answer) for answer in traffic.answers]
    switch = ys.index(scaled(2.0))
    assert set(map(str, ys[:switch])) == {str(scaled(1.0))}
    assert set(map(str, ys[switch:])) == {str(scaled(2.0))}
    events = [event for event in tfserving.events(API) if event["t"] > uploaded]
    loading_at = next(event["t"] for event in events if event["state"] == "LOADING")
    available_at = next(event["t"] for event in events if event["state"] == "AVAILABLE")
    assert traffic.answers[switch].end >= available_at
    assert any(loading_at <= answer.start and answer.end <= available_at for answer in traffic.answers[:switch]), (
        "no request was answered (by version 1) while version 2 was LOADING"
    )

    # AND version 1 stays addressable by number, as does 2
    assert y(server, version=1) == scaled(1.0)
    assert y(server, version="2") == scaled(2.0)
    assert len(tfserving.available(API)) == 2

    # WHEN version 2 is removed from S3
    Models(s3_client, bucket).delete_prefix("models/scaler/2/")

    # THEN latest is version 1 again, version 2 answers 404, TF Serving unloaded it, and its folder is gone
    wait_until(lambda: y(server) == scaled(1.0), what="back to version 1")
    missing = server.post({"x": INPUT}, version=2)
    assert missing.status_code == 404, missing.text
    assert "no version 2" in missing.json()["error"]
    wait_until(lambda: len(tfserving.available(API)) == 1, what="TF Serving unloaded version 2")
    wait_until(lambda: internal_folders(model_dir, API) == [str(v) for v in tfserving.available(API)])
    assert server.version(API)["loaded"] == [1]


def test_a_version_missing_a_variables_shard_loads_when_the_shard_arrives(
    serve, tfserving, s3_client, bucket, tmp_path
):
    # GIVEN a SavedModel whose variables span several shards, uploaded without its second shard,
    # and the agent alone (`reloader agent`, a sidecar) keeping TF Serving equal to a `dir` of models
    models = SavedModels(s3_client, bucket, tmp_path)
    folder = models.build(scale=3.0, sharded=True)
    shards = [name for name in files_of(folder) if name.startswith("variables/variables.data-")]
    assert len(shards) > 1
    for name in files_of(folder):
        if name != shards[1]:
            models.put_file("models/sharded", 1, folder, name)
    agent = start(serve, tfserving, tmp_path / "models", tf_api({"dir": f"s3://{bucket}/models"}), "agent")

    # THEN the version is not loaded: /models names the missing shard and TF Serving never heard of it
    status = agent.version("sharded")["versions"]["1"]
    assert status["state"] == "waiting"
    assert shards[1] in status["error"]
    assert tfserving.status("sharded") == {}
    assert agent.post({"x": INPUT}).status_code == 404  # the agent alone answers no predictions

    # WHEN the shard arrives THEN the version loads, and TF Serving serves its predictions
    models.put_file("models/sharded", 1, folder, shards[1])
    wait_until(lambda: agent.version("sharded")["loaded"] == [1], what="version 1 loaded")
    assert tfserving.predict("sharded", INPUT) == [scaled(3.0)]  # TF Serving itself keeps the shape


def push_graph_only(serve: ServeFactory, bucket: str, tmp_path: Path, scale: float, *push_options: str) -> None:
    """`reloader push` a SavedModel that is only its saved_model.pb (Cortex's Inferentia layout) as version 1."""
    folder = save_graph_only(tmp_path / "graph-only", scale)
    assert files_of(folder) == ["saved_model.pb"]
    pushed = serve.run("push", str(folder), f"s3://{bucket}/models/graph", "--version", "1", *push_options)
    assert pushed.returncode == 0, pushed.stderr


@pytest.mark.parametrize(
    ("push_options", "reloading", "compute"),
    [
        pytest.param(("--marker", "_READY"), {"ready_marker": "_READY"}, None, id="ready-marker"),
        pytest.param(("--no-marker",), {}, {"inf": 1, "cpu": 1}, id="compute-inf"),
    ],
)
def test_a_graph_only_savedmodel_loads_once_declared_complete(
    serve, tfserving, s3_client, bucket, tmp_path, push_options, reloading, compute
):
    # GIVEN a SavedModel without variables/ (its scale is a constant in the graph), pushed as version 1
    push_graph_only(serve, bucket, tmp_path, 4.0, *push_options)
    # WHEN it is served with a ready marker that is there, or with compute.inf declaring Inferentia
    api = tf_api({"path": f"s3://{bucket}/models/graph"}, reloading=reloading)
    if compute is not None:
        api["compute"] = compute
    server = start(serve, tfserving, tmp_path / "models", api)

    # THEN TF Serving loaded it, and it answers predictions
    wait_until(lambda: server.version(API)["loaded"] == [1], what="version 1 loaded")
    assert y(server) == scaled(4.0)
    assert len(tfserving.available(API)) == 1
    # AND compute.inf is not reported as not applicable (the rest of compute is)
    if compute is not None:
        [warning] = [line for line in server.log().splitlines() if "not applicable" in line]
        assert "compute.cpu" in warning and "compute.inf" not in warning, warning


def test_a_graph_only_savedmodel_without_a_signal_waits_and_says_how_to_load_it(
    serve, tfserving, s3_client, bucket, tmp_path
):
    # GIVEN a SavedModel without variables/, pushed without a marker
    push_graph_only(serve, bucket, tmp_path, 4.0, "--no-marker")
    # WHEN it is served with neither a ready marker nor compute.inf (in `dir` mode: the model is "graph")
    server = start(serve, tfserving, tmp_path / "models", tf_api({"dir": f"s3://{bucket}/models"}))

    # THEN it waits (it may be a version whose variables are still uploading), /models says how to get it
    # loaded, and TF Serving never heard of it
    status = server.version("graph")["versions"]["1"]
    assert status["state"] == "waiting"
    assert "no variables/" in status["error"]
    assert "set reloading.ready_marker and write the marker into every version" in status["error"]
    assert "set compute.inf above 0" in status["error"]
    assert server.version("graph")["loaded"] == []
    assert tfserving.status("graph") == {}
    assert server.post({"x": INPUT}, model="graph").status_code == 404


def test_a_restarted_tf_serving_gets_the_served_versions_back(serve, tfserving, s3_client, bucket, tmp_path):
    # GIVEN versions 1 and 2 served
    models = SavedModels(s3_client, bucket, tmp_path)
    models.put("models/scaler", 1, scale=1.0)
    models.put("models/scaler", 2, scale=2.0)
    server = start(serve, tfserving, tmp_path / "models", tf_api({"path": f"s3://{bucket}/models/scaler"}))
    assert y(server) == scaled(2.0)

    # WHEN TF Serving crashes and starts again, serving nothing
    tfserving.restart()

    # THEN the agent sends its config again, and both versions answer again
    wait_until(lambda: y(server) == scaled(2.0) and y(server, version=1) == scaled(1.0), timeout=30, what="restored")
    assert len(tfserving.available(API)) == 2
    assert "reloader_tfserving_resends_total 1.0" in server.http.get("/metrics").text
    assert server.version(API)["loaded"] == [1, 2]


def test_predictions_never_fail_during_ten_reloads(serve, tfserving, s3_client, bucket, tmp_path):
    # GIVEN version 1 served, and eight clients predicting without pause, with "latest" and with version 1
    models = SavedModels(s3_client, bucket, tmp_path)
    models.put("models/busy", 1, scale=1.0)
    # settle: the four files of an in-place update land before the version is read again
    api = tf_api({"path": f"s3://{bucket}/models/busy"}, reloading={"settle": 0.3})
    server = start(serve, tfserving, tmp_path / "models", api)
    wait_until(lambda: y(server) == scaled(1.0), what="version 1 served (after its settle window)")

    with predicting(server, threads=8, params=({}, {"version": "1"})) as traffic:
        # WHEN version 1 is updated in place ten times
        for scale in range(2, 12):
            models.put("models/busy", 1, scale=float(scale))
            wait_until(lambda scale=scale: last_y(traffic, version="1") == scaled(scale), timeout=30, what=f"x{scale}")

    # THEN every request answered 200 with the prediction of one of the uploaded versions
    assert traffic.failures() == []
    assert len(traffic.answers) > 100
    assert {y_of(answer)[0] for answer in traffic.answers} <= {float(scale) for scale in range(1, 12)}
    # AND TF Serving is left with one internal version of the model, the last upload
    wait_until(lambda: len(tfserving.available(API)) == 1, what="older internal versions unloaded")
    assert y(server) == scaled(11.0)


def test_the_tensorflow_example_serves_the_versions_its_train_script_makes(
    serve, tfserving, s3_client, bucket, tmp_path
):
    # GIVEN the example's spec pointed at a test bucket, and two versions made by its train.py, pushed with
    # `reloader push`: version 1 barely trained, version 2 trained fully
    example = EXAMPLES / "tensorflow"
    train = _import(example / "train.py")
    for version, steps in ((1, 5), (2, 400)):
        train.main([str(tmp_path / f"v{version}"), "--steps", str(steps)])
        destination = f"s3://{bucket}/models/temperature/"
        pushed = serve.run("push", str(tmp_path / f"v{version}"), destination, "--version", str(version), "--no-marker")
        assert pushed.returncode == 0, pushed.stderr
    api = yaml.safe_load((example / "cortex.yaml").read_text())[0]
    api["handler"]["path"] = str(example / "handler.py")
    api["handler"]["models"]["path"] = f"s3://{bucket}/models/temperature/"

    # WHEN it is served
    server = start(serve, tfserving, tmp_path / "models", {**api, "reloading": {"interval": 0.5, "settle": 0}})

    # THEN the latest version converts exactly, and version 1 answers as the rough model it is
    response = server.post({"celsius": [100, 0, -40]})
    assert response.status_code == 200, response.text
    assert response.json() == {"fahrenheit": [212.0, 32.0, -40.0]}
    rough = server.post({"celsius": [100]}, version=1).json()["fahrenheit"]
    assert rough != [212.0]


def _import(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("reloading", "expected"),
    [
        pytest.param({}, ["reloading.model_dir", "RELOADER_MODEL_DIR", "TF Serving"], id="no-model-dir"),
        pytest.param(
            {"model_dir": "/tmp/shared", "tfserving_model_dir": "models"},
            ["tfserving_model_dir", "absolute path", "'models'"],
            id="relative-tfserving-model-dir",
        ),
    ],
)
def test_the_agent_alone_needs_the_folder_it_shares_with_tf_serving(serve, bucket, reloading, expected):
    # GIVEN a TensorFlow spec without a model folder TF Serving can read
    api = tf_api({"path": f"s3://{bucket}/models/scaler"}, reloading=reloading)
    # WHEN `reloader agent` runs on it THEN it refuses with status 2, naming the setting
    result = serve.run("agent", str(serve.spec(api)))
    assert result.returncode == 2, result.stderr
    assert all(text in result.stderr for text in expected), result.stderr
    assert "Traceback" not in result.stderr


def test_with_caching_tf_serving_holds_the_cached_versions_only(serve, tfserving, s3_client, bucket, tmp_path):
    # GIVEN three SavedModels in `dir` mode, cache_size 1, disk_cache_size 2
    models = SavedModels(s3_client, bucket, tmp_path)
    for number, name in enumerate(("a", "b", "c"), start=1):
        models.put(f"zoo/{name}", 1, scale=float(number))
    model_dir = tmp_path / "models"
    api = tf_api({"dir": f"s3://{bucket}/zoo", "cache_size": 1, "disk_cache_size": 2})
    server = start(serve, tfserving, model_dir, api)
    # THEN nothing is loaded at start: TF Serving's config names none of them
    assert all(tfserving.available(name) == [] for name in ("a", "b", "c"))
    assert server.version("a")["versions"]["1"]["where"] == "s3"

    # WHEN a is asked for THEN an uncached predict adds it to TF Serving's config and answers from it
    assert y(server, model="a") == scaled(1.0)
    assert "a" in tfserving.configs()[-1] and len(tfserving.available("a")) == 1
    # WHEN b is asked for THEN b is loaded and a, evicted, leaves TF Serving's config
    assert y(server, model="b") == scaled(2.0)
    last = tfserving.configs()[-1]
    assert "b" in last and "a" not in last
    wait_until(lambda: tfserving.available("a") == [], what="a unloaded by TF Serving")
    assert server.version("a")["versions"]["1"]["where"] == "disk"
    # AND the folder of every version in the config is on disk, at most 2 folders in all
    assert len(internal_folders(model_dir, "b")) == 1
    # WHEN c then a are asked for THEN each answers from its own model, a from its folder on disk or S3
    assert y(server, model="c") == scaled(3.0)
    assert y(server, model="a") == scaled(1.0)
    wait_until(lambda: sum(len(internal_folders(model_dir, name)) for name in ("a", "b", "c")) <= 2, what="disk LRU")
    assert tfserving.configs()[-1].keys() == {"a"}


def test_with_caching_a_restart_keeps_what_tf_serving_has_loaded(serve, tfserving, s3_client, bucket, tmp_path):
    # GIVEN two of three models cached in TF Serving by `reloader serve`, cache_size 2
    models = SavedModels(s3_client, bucket, tmp_path)
    for number, name in enumerate(("a", "b", "c"), start=1):
        models.put(f"zoo/{name}", 1, scale=float(number))
    model_dir = tmp_path / "models"
    api = tf_api({"dir": f"s3://{bucket}/zoo", "cache_size": 2, "disk_cache_size": 2})
    server = start(serve, tfserving, model_dir, api)
    assert y(server, model="a") == scaled(1.0)
    assert y(server, model="b") == scaled(2.0)
    served = {name: tfserving.available(name) for name in ("a", "b")}
    configs = tfserving.configs()

    # WHEN it restarts (TF Serving keeps running)
    server.stop()
    restarted = start(serve, tfserving, model_dir, api)
    # THEN the versions TF Serving serves stay cached: nothing loaded again, the same config sent
    wait_until(
        lambda: all(restarted.version(name)["versions"]["1"]["where"] == "memory" for name in ("a", "b")),
        what="a and b taken over into the cache",
    )
    assert {name: tfserving.available(name) for name in ("a", "b")} == served
    assert all(config == configs[-1] for config in tfserving.configs()[len(configs) :])
    # AND a request for either is a hit; c is still in S3 only
    assert y(restarted, model="a") == scaled(1.0)
    assert metric(restarted, "reloader_cache_requests_total", result="miss") == 0
    assert restarted.version("c")["versions"]["1"]["where"] == "s3"


def test_info_gives_each_loaded_versions_signature_from_tf_serving(serve, tfserving, s3_client, bucket, tmp_path):
    # GIVEN two SavedModels of different signatures served through TF Serving
    models = SavedModels(s3_client, bucket, tmp_path)
    models.put("tf/scaler", 1, scale=1.0)
    models.put_folder("tf/summer", 4, save_summer(tmp_path / "summer"))
    paths = [
        {"name": "scaler", "path": f"s3://{bucket}/tf/scaler"},
        {"name": "summer", "path": f"s3://{bucket}/tf/summer"},
    ]
    server = start(serve, tfserving, tmp_path / "models", tf_api({"paths": paths}))

    # WHEN /info is asked
    metadata = server.http.get("/info").json()["model_metadata"]

    # THEN each model version has its signature with input and output names, types and shapes
    assert sorted(metadata) == ["scaler-1", "summer-4"]
    scaler, summer = metadata["scaler-1"], metadata["summer-4"]
    assert scaler["signature_key"] == summer["signature_key"] == "serving_default"
    assert scaler["input_signatures"] == {"x": {"shape": [-1, -1], "type": "float32"}}
    assert scaler["output_signatures"] == {"y": {"shape": [-1, -1], "type": "float32"}}
    assert summer["input_signatures"] == {"ids": {"shape": [-1, 3], "type": "int64"}}
    assert summer["output_signatures"] == {"total": {"shape": [-1], "type": "int64"}}
    # (the SignatureDef as TF Serving's metadata gives it, as Cortex 0.35 passed it on)
    ids = summer["signature_def"]["serving_default"]["inputs"]["ids"]
    assert ids["dtype"] == "DT_INT64" and ids["tensorShape"] == {"dim": [{"size": "-1"}, {"size": "3"}]}
    assert scaler["tfserving_version"] == server.version("scaler")["versions"]["1"]["tfserving_version"]

    # WHEN a second version of the scaler arrives THEN /info shows it too
    models.put("tf/scaler", 2, scale=2.0)
    wait_until(lambda: "scaler-2" in server.http.get("/info").json()["model_metadata"], what="scaler-2 in /info")


def test_two_serving_processes_predict_through_one_tf_serving_whose_config_the_agent_owns(
    serve, tfserving, s3_client, bucket, tmp_path
):
    # GIVEN version 1 served by two processes (processes_per_replica) and one TF Serving
    models = SavedModels(s3_client, bucket, tmp_path)
    models.put("models/scaler", 1, scale=1.0)
    api = tf_api({"path": f"s3://{bucket}/models/scaler"})
    api["handler"] |= {"processes_per_replica": 2, "threads_per_process": 2}
    configs = len(tfserving.configs())
    server = start(serve, tfserving, tmp_path / "models", api)

    def answers() -> list[dict[str, Any]]:
        return [
            httpx.post(f"{server.url}/", json={"x": INPUT}, headers={"Connection": "close"}, timeout=30).json()
            for _ in range(20)
        ]

    # THEN both processes answer, from TF Serving
    wait_until(lambda: len({answer["pid"] for answer in answers()}) == 2, what="two processes answering")
    # WHEN version 2 is uploaded THEN both predict with it
    models.put("models/scaler", 2, scale=2.0)
    wait_until(lambda: all(a["y"] == scaled(2.0) for a in answers()), timeout=30, what="version 2 in both")
    # THEN only the agent changed TF Serving's config: one config per change, not one per process
    sent = tfserving.configs()[configs:]
    assert 1 <= len(sent) <= 3, sent
    status = server.version(API)["versions"]["2"]
    assert {number: state["state"] for number, state in status["processes"].items()} == {"1": "ready", "2": "ready"}
