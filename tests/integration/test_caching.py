"""Multi-model caching (`cache_size` / `disk_cache_size`) on the Python handler: `reloader serve` on
LocalStack, checked through HTTP (the test handler counts its live objects and its loads)."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import Models, Server, api_spec, metric, prediction, wait_until

pytestmark = pytest.mark.localstack


def stats(server: Server) -> dict[str, Any]:
    response = server.http.get("/", params={"stats": 1})
    assert response.status_code == 200, response.text
    return dict(response.json())


def folders(model_dir: Path) -> list[Path]:
    """Complete version folders on disk (not the temporary ones being written)."""
    return [
        folder
        for model in model_dir.iterdir()
        if model.is_dir()
        for folder in model.iterdir()
        if not folder.name.startswith(".")
    ]


def cached(models: dict[str, Any], memory: int, disk: int) -> dict[str, Any]:
    return {**models, "cache_size": memory, "disk_cache_size": disk}


def test_forty_models_in_a_cache_of_three_never_hold_more_than_three(serve, s3_client, bucket, tmp_path):
    # GIVEN 40 models in `dir` mode, cache_size 3, disk_cache_size 6 (folders removed at once when evicted)
    models = Models(s3_client, bucket)
    for number in range(40):
        models.put_version(f"zoo/m{number}", 1, tag=float(number))
    model_dir = tmp_path / "store"
    spec = api_spec(
        cached({"dir": f"s3://{bucket}/zoo"}, 3, 6), reloading={"model_dir": str(model_dir), "retire_after": 0}
    )
    server = serve.start(serve.spec(spec))
    # THEN it is ready before any load: every model is known, none loaded
    assert stats(server)["loads"] == {}
    assert len(server.models()) == 40
    assert all(row["where"] == "s3" for row in server.version("m7")["versions"].values())

    # WHEN requests over 20 models arrive in random order
    chosen = [f"m{number}" for number in random.Random(10).sample(range(40), 20)]
    order = chosen + random.Random(11).sample(chosen, 20)
    for name in order:
        # THEN each answers from its own model
        assert prediction(server, model=name) == float(name[1:])
        # AND never more than 3 objects are alive (no request holds one between requests, none is loading)
        assert stats(server)["alive"] <= 3
        # AND never more than 6 folders are on disk
        assert len(folders(model_dir)) <= 6
    assert metric(server, "reloader_cache_evictions_total", where="memory") > 0
    assert metric(server, "reloader_cache_evictions_total", where="disk") > 0
    assert metric(server, "reloader_cache_entries", where="memory") == 3
    assert metric(server, "reloader_cache_entries", where="disk") == 6
    # AND /models says where each version is, for the model asked for only
    last = order[-1]
    only = server.http.get("/models", params={"model": last}).json()
    assert list(only) == [last] and only[last]["versions"]["1"]["where"] == "memory"


def test_concurrent_requests_for_one_uncached_entry_load_it_once(serve, s3_client, bucket):
    # GIVEN a cached model and an uncached one whose load takes 1.5 s, 10 handler threads
    models = Models(s3_client, bucket)
    models.put_version("zoo/fast", 1, tag=1.0)
    models.put_version("zoo/slow", 1, tag=2.0, extra={"SLOW": b"1.5"})
    spec = api_spec(cached({"dir": f"s3://{bucket}/zoo"}, 2, 2), threads_per_process=10)
    server = serve.start(serve.spec(spec))
    assert prediction(server, model="fast") == 1.0
    gets_before = metric(server, "reloader_s3_requests_total", operation="GetObject")

    # WHEN 8 requests for the slow one arrive at once
    answers: list[float] = []

    def ask() -> None:
        answers.append(prediction(server, model="slow"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_until(lambda: server.version("slow")["versions"]["1"]["where"] == "loading", what="the cold load")
    # THEN a request for the cached model during that load answers at once
    started = time.monotonic()
    assert prediction(server, model="fast") == 1.0
    assert time.monotonic() - started < 0.5
    for thread in threads:
        thread.join()
    # AND all 8 got the slow model, from one download and one load_model
    assert answers == [2.0] * 8
    assert stats(server)["loads"]["slow"] == 1
    assert metric(server, "reloader_s3_requests_total", operation="GetObject") - gets_before == 2  # SLOW, model.pkl
    assert metric(server, "reloader_cold_load_seconds_count", phase="load") == 2  # fast's, then slow's


def test_cached_entries_are_refreshed_before_the_next_request(serve, s3_client, bucket):
    # GIVEN a model whose version 1 is cached
    models = Models(s3_client, bucket)
    models.put_version("zoo/m", 1, tag=1.0)
    models.put_version("zoo/other", 1, tag=9.0)
    server = serve.start(serve.spec(api_spec(cached({"dir": f"s3://{bucket}/zoo"}, 2, 3))))
    assert prediction(server, model="m") == 1.0
    before = server.version("m")["versions"]["1"]["fingerprint"]

    # WHEN version 1 is updated in place
    models.put_version("zoo/m", 1, tag=1.5)
    # THEN once /models shows the new content in memory, the next request is answered by it, loaded eagerly
    wait_until(
        lambda: (row := server.version("m")["versions"]["1"])["fingerprint"] != before and row["where"] == "memory",
        what="the in-place update loaded in the background",
    )
    loads = stats(server)["loads"]["m"]
    assert loads == 2
    assert prediction(server, model="m") == 1.5
    assert stats(server)["loads"]["m"] == loads  # no load_model in the request

    # WHEN a new version of the cached model appears
    models.put_version("zoo/m", 2, tag=2.0)
    # THEN it is loaded before latest moves to it, and the next request gets it without a load
    wait_until(lambda: server.version("m")["latest"] == 2, what="latest moves to 2")
    assert server.version("m")["versions"]["2"]["where"] == "memory"
    loads = stats(server)["loads"]["m"]
    assert prediction(server, model="m") == 2.0
    assert stats(server)["loads"]["m"] == loads
    # AND the model never asked for stays in S3 only
    assert "other" not in stats(server)["loads"]


def test_a_failing_cold_load_answers_503_with_the_reason_and_a_fixed_upload_loads(serve, s3_client, bucket):
    # GIVEN a broken model beside a good one, with caching
    models = Models(s3_client, bucket)
    models.put_version("zoo/good", 1, tag=1.0)
    models.put_version("zoo/bad", 1, tag=2.0, extra={"FAIL": b"weights are corrupt"})
    spec = api_spec(cached({"dir": f"s3://{bucket}/zoo"}, 2, 2), reloading={"retry_backoff": 0.2})
    server = serve.start(serve.spec(spec))
    assert prediction(server, model="good") == 1.0

    # WHEN the broken one is asked for THEN 503 with the reason, recorded as a failed version
    failed = server.post({}, model="bad")
    assert failed.status_code == 503
    assert "weights are corrupt" in failed.json()["error"]
    assert server.version("bad")["versions"]["1"]["state"] == "failed"
    # AND the other model keeps serving; an unknown one is still a 404
    assert prediction(server, model="good") == 1.0
    assert server.post({}, model="nothing").status_code == 404
    # WHEN a fixed version is uploaded in its place THEN it loads on the next request
    models.delete_prefix("zoo/bad/")
    models.put_version("zoo/bad", 1, tag=3.0)
    wait_until(lambda: server.post({}, model="bad").status_code == 200, what="the fixed upload served")
    assert prediction(server, model="bad") == 3.0


def test_a_cold_load_past_its_deadline_answers_503_and_serves_once_loaded(serve, s3_client, bucket):
    # GIVEN a model whose load takes 2 s and a cold-load deadline of 0.5 s
    models = Models(s3_client, bucket)
    models.put_version("zoo/slow", 1, tag=4.0, extra={"SLOW": b"2"})
    spec = api_spec(cached({"dir": f"s3://{bucket}/zoo"}, 1, 1), reloading={"cold_load_deadline": 0.5})
    server = serve.start(serve.spec(spec))
    # WHEN it is asked for THEN 503 saying it is still loading
    late = server.post({}, model="slow")
    assert late.status_code == 503 and "still loading" in late.json()["error"]
    # AND the load completes in the background and serves the next request
    wait_until(lambda: server.version("slow")["versions"]["1"]["where"] == "memory", what="the load completed")
    assert prediction(server, model="slow") == 4.0
    assert stats(server)["loads"]["slow"] == 1


def test_cortex_pattern_one_model_three_versions_in_a_cache_of_one(serve, s3_client, bucket):
    # GIVEN `paths` with one model of three versions, cache_size 1, disk_cache_size 2
    models = Models(s3_client, bucket)
    for version in (1, 2, 3):
        models.put_version("models/iris", version, tag=float(version))
    paths = [{"name": "iris", "path": f"s3://{bucket}/models/iris"}]
    server = serve.start(serve.spec(api_spec(cached({"paths": paths}, 1, 2))))
    # WHEN versions 1, 2, 3 are asked for in turn, twice THEN every answer is right
    for _ in range(2):
        for version in (1, 2, 3):
            assert prediction(server, model="iris", version=version) == float(version)
            assert stats(server)["alive"] <= 1
    assert prediction(server, model="iris") == 3.0
    assert server.version("iris")["latest"] == 3


@pytest.mark.parametrize(
    ("sizes", "field", "found"),
    [
        pytest.param({"cache_size": 3}, "multi_model_reloading.disk_cache_size", "found cache_size: 3", id="alone"),
        pytest.param({"disk_cache_size": 6}, "multi_model_reloading.disk_cache_size", "disk_cache_size: 6", id="disk"),
        pytest.param(
            {"cache_size": 7, "disk_cache_size": 6},
            "multi_model_reloading.disk_cache_size",
            "6 < cache_size: 7",
            id="gt",
        ),
        pytest.param({"cache_size": 0, "disk_cache_size": 6}, "multi_model_reloading.cache_size", "found 0", id="zero"),
        pytest.param(
            {"cache_size": "3", "disk_cache_size": 6}, "multi_model_reloading.cache_size", "found '3'", id="not-an-int"
        ),
    ],
)
def test_a_bad_cache_spec_exits_2_naming_the_field(tmp_path, sizes, field, found):
    # GIVEN a spec breaking one of the cache rules
    spec = tmp_path / "cortex.yaml"
    spec.write_text(yaml.safe_dump([api_spec({"dir": "s3://bucket/models", **sizes})]))
    # WHEN it is served THEN `reloader serve` exits with status 2, naming the field and the values found
    result = subprocess.run(
        [str(Path(sys.executable).parent / "reloader"), "serve", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert field in result.stderr and found in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_agent_alone_refuses_caching(tmp_path):
    # GIVEN a TensorFlow spec with caching, for `reloader agent` (which answers no predictions)
    spec = tmp_path / "cortex.yaml"
    api = api_spec({"dir": "s3://bucket/models", "cache_size": 2, "disk_cache_size": 2})
    api["handler"]["type"] = "tensorflow"
    api["handler"]["models"] = api["handler"].pop("multi_model_reloading")
    spec.write_text(yaml.safe_dump([api]))
    # WHEN it is run THEN it exits 2: nothing would ever load
    result = subprocess.run(
        [str(Path(sys.executable).parent / "reloader"), "agent", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "handler.models.cache_size" in result.stderr and "reloader serve" in result.stderr


def test_a_new_version_of_a_cached_model_loads_before_latest_moves_to_it(serve, s3_client, bucket):
    # GIVEN a model whose version 1 is cached
    models = Models(s3_client, bucket)
    models.put_version("zoo/m", 1, tag=1.0)
    server = serve.start(serve.spec(api_spec(cached({"dir": f"s3://{bucket}/zoo"}, 2, 2))))
    assert prediction(server, model="m") == 1.0
    # WHEN version 2 appears, and takes 2 s to load
    models.put_version("zoo/m", 2, tag=2.0, extra={"SLOW": b"2"})
    wait_until(lambda: server.version("m")["versions"].get("2", {}).get("where") == "loading", what="2 loading")
    # THEN meanwhile requests for latest answer from version 1 at once
    started = time.monotonic()
    assert prediction(server, model="m") == 1.0
    assert time.monotonic() - started < 1.0
    assert server.version("m")["latest"] == 1
    # AND once it is loaded, latest is version 2, with no load in a request
    wait_until(lambda: server.version("m")["latest"] == 2, what="latest moves to 2")
    assert prediction(server, model="m") == 2.0
    assert stats(server)["loads"]["m"] == 2


def test_two_versions_of_one_model_cold_load_at_the_same_time(serve, s3_client, bucket):
    # GIVEN one model with versions 1 and 2, each taking 2 s to load, neither in memory
    models = Models(s3_client, bucket)
    for version in (1, 2):
        models.put_version("zoo/m", version, tag=float(version), extra={"SLOW": b"2"})
    server = serve.start(serve.spec(api_spec(cached({"dir": f"s3://{bucket}/zoo"}, 2, 2), threads_per_process=4)))
    answers: dict[int, float] = {}

    def ask(version: int) -> None:
        answers[version] = prediction(server, model="m", version=version)

    # WHEN requests for version 1 and version 2 arrive together
    threads = [threading.Thread(target=ask, args=(version,)) for version in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN each answers from its own version
    assert answers == {1: 1.0, 2: 2.0}
    # AND the two load_model calls ran at the same time (the second did not wait for the first's end)
    assert stats(server)["loads"]["m"] == 2
    assert stats(server)["overlap"]["m"] == 2


def test_a_restart_keeps_the_disk_cache_in_the_order_of_last_use(serve, s3_client, bucket, tmp_path):
    # GIVEN cache_size 2, disk_cache_size 3, a model_dir that outlives the process, and models a, b, a
    # again, then c asked for (b left memory for c; a and c are in memory, a used before c)
    models = Models(s3_client, bucket)
    for number, name in enumerate("abcd"):
        models.put_version(f"zoo/{name}", 1, tag=float(number))
    model_dir = tmp_path / "store"
    reloading = {"model_dir": str(model_dir), "retire_after": 0}
    spec = serve.spec(api_spec(cached({"dir": f"s3://{bucket}/zoo"}, 2, 3), reloading=reloading))
    first = serve.start(spec)
    for name in "abac":
        assert prediction(first, model=name) == float("abcd".index(name))
    assert sorted(folder.parent.name for folder in folders(model_dir)) == ["a", "b", "c"]
    first.stop()

    # WHEN reloader serve starts again on the same folder
    second = serve.start(spec)
    # THEN it adopted the three folders as on disk (nothing in memory), and d is in S3 only
    where = {name: second.version(name)["versions"]["1"]["where"] for name in "abcd"}
    assert where == {"a": "disk", "b": "disk", "c": "disk", "d": "s3"}
    assert metric(second, "reloader_cache_entries", where="disk") == 3
    # AND a new model's folder evicts the least recently used of them, b (by last request, not by load)
    assert prediction(second, model="d") == 3.0
    assert sorted(folder.parent.name for folder in folders(model_dir)) == ["a", "c", "d"]
    # AND a and c answer from their adopted folders: no GET
    gets = metric(second, "reloader_s3_requests_total", operation="GetObject")
    assert prediction(second, model="a") == 0.0 and prediction(second, model="c") == 2.0
    assert metric(second, "reloader_s3_requests_total", operation="GetObject") == gets
