"""Spec validation: Cortex 0.35 specs load unchanged; mistakes name their field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.boundaries.spec_file import load_spec
from agent.domain.errors import SpecError
from agent.domain.locations import LocalLocation, S3Location


def write(tmp_path: Path, apis) -> Path:
    path = tmp_path / "cortex.yaml"
    path.write_text(yaml.safe_dump(apis))
    return path


def api(**handler) -> dict:
    return {"name": "iris", "kind": "RealtimeAPI", "handler": {"type": "python", "path": "handler.py", **handler}}


def test_a_full_cortex_spec_loads(tmp_path):
    spec_path = write(
        tmp_path,
        [
            {
                **api(
                    multi_model_reloading={
                        "paths": [{"name": "a", "path": "s3://b/a"}, {"name": "b", "path": "local/b"}]
                    },
                    config={"k": 1},
                    env={"X": "1"},
                    threads_per_process=4,
                    log_level="debug",
                    server_side_batching={"max_batch_size": 8, "batch_interval": "0.1s"},
                    image="quay.io/x",
                ),
                "compute": {"cpu": 1},
                "autoscaling": {"min_replicas": 1},
                "networking": {"endpoint": "/iris"},
                "update_strategy": {"max_surge": "25%"},
            }
        ],
    )
    spec = load_spec(spec_path)
    assert spec.models is not None
    assert [s.location for s in spec.models.fixed] == [S3Location("b", "a"), LocalLocation(tmp_path / "local" / "b")]
    assert spec.handler_path == tmp_path / "handler.py"
    assert spec.python_path == tmp_path
    assert set(spec.not_applicable_fields()) == {
        "compute.cpu",
        "autoscaling",
        "networking",
        "update_strategy",
        "handler.image",
        "handler.server_side_batching",
    }


@pytest.mark.parametrize(
    ("handler", "field", "words"),
    [
        pytest.param(
            {"multi_model_reloading": {"path": "s3://b/a", "dir": "s3://b/d"}},
            "handler.multi_model_reloading",
            "found 'path' and 'dir'",
            id="path-and-dir",
        ),
        pytest.param({"multi_model_reloading": {}}, "handler.multi_model_reloading", "found none of them", id="none"),
        pytest.param(
            {
                "multi_model_reloading": {
                    "paths": [{"name": "a", "path": "s3://b/1"}, {"name": "a", "path": "s3://b/2"}]
                }
            },
            "handler.multi_model_reloading",
            "duplicates: ['a']",
            id="duplicate-names",
        ),
        pytest.param(
            {"multi_model_reloading": {"path": "http://x/y"}},
            "multi_model_reloading.path",
            "s3://bucket/prefix",
            id="not-s3",
        ),
        pytest.param(
            {"multi_model_reloading": {"paths": [{"name": "m", "path": "http://x/y"}]}},
            "handler.multi_model_reloading.paths[0].path",
            "expected s3://bucket/prefix or a local folder, found 'http://x/y'",
            id="paths-entry-not-s3",
        ),
        pytest.param(
            {"multi_model_reloading": {"paths": [{"name": "a", "path": "s3://b/a"}, {"name": "m", "path": "s3://"}]}},
            "handler.multi_model_reloading.paths[1].path",
            "no bucket name",
            id="paths-entry-without-bucket",
        ),
        pytest.param(
            {"type": "tensorflow", "models": {"paths": [{"name": "m", "path": "s3://b/../x"}]}},
            "handler.models.paths[0].path",
            "plain segments",
            id="tensorflow-paths-entry-with-dots",
        ),
        pytest.param({"type": "onnx"}, "handler.type", "found 'onnx'", id="unknown-type"),
        pytest.param(
            {"processes_per_replica": 0}, "handler.processes_per_replica", "greater than or equal to 1", id="processes"
        ),
        pytest.param({"thread_per_process": 3}, "handler.thread_per_process", "unknown field", id="typo"),
        pytest.param(
            {"models": {"path": "s3://b/a"}}, "handler", "'models' is for the tensorflow", id="models-on-python"
        ),
    ],
)
def test_bad_specs_name_the_field(tmp_path, handler, field, words):
    with pytest.raises(SpecError) as raised:
        load_spec(write(tmp_path, [api(**handler)]))
    message = str(raised.value)
    assert field in message and words in message, message


def test_reloading_block_is_overridden_by_the_environment(tmp_path, monkeypatch):
    path = write(
        tmp_path,
        [{**api(multi_model_reloading={"path": "s3://b/a"}), "reloading": {"interval": 30, "ready_marker": "_DONE"}}],
    )
    assert load_spec(path).api.reloading.interval == 30
    monkeypatch.setenv("RELOADER_INTERVAL", "5")
    settings = load_spec(path).api.reloading
    assert settings.interval == 5 and settings.ready_marker == "_DONE"


@pytest.mark.parametrize("reloading", [pytest.param(None, id="no-block"), pytest.param({"settle": 2}, id="block")])
def test_a_bad_environment_override_names_its_variable(tmp_path, monkeypatch, reloading):
    base = api(multi_model_reloading={"path": "s3://b/a"})
    path = write(tmp_path, [base if reloading is None else {**base, "reloading": reloading}])
    monkeypatch.setenv("RELOADER_INTERVAL", "abc")
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert "reloading.interval (from the environment variable RELOADER_INTERVAL)" in str(raised.value)
    assert "found 'abc'" in str(raised.value)


def test_the_scan_interval_depends_on_the_event_source(tmp_path):
    base = api(multi_model_reloading={"path": "s3://b/a"})
    assert load_spec(write(tmp_path, [base])).api.reloading.scan_interval == 10
    with_queue = {**base, "reloading": {"queue_url": "http://q"}}
    assert load_spec(write(tmp_path, [with_queue])).api.reloading.scan_interval == 300


def test_bad_reloading_values_name_the_field(tmp_path):
    path = write(tmp_path, [{**api(multi_model_reloading={"path": "s3://b/a"}), "reloading": {"intervall": 3}}])
    with pytest.raises(SpecError, match=r"reloading\.intervall"):
        load_spec(path)


def test_choosing_among_several_apis(tmp_path):
    second = {**api(), "name": "other"}
    path = write(tmp_path, [api(), second])
    with pytest.raises(SpecError, match="--api"):
        load_spec(path)
    assert load_spec(path, "other").api.name == "other"
    with pytest.raises(SpecError, match="expected an API named 'nope'"):
        load_spec(path, "nope")


def tensorflow_api(models: dict) -> dict:
    return {"name": "tf", "kind": "RealtimeAPI", "handler": {"type": "tensorflow", "path": "h.py", "models": models}}


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        pytest.param(
            {
                "paths": [
                    {"name": "a", "path": "s3://b/a", "signature_key": "entry"},
                    {"name": "b", "path": "s3://b/b"},
                ],
                "signature_key": "top",
            },
            {"a": "entry", "b": "top"},
            id="paths-entry-beats-top-level",
        ),
        pytest.param(
            {"paths": [{"name": "a", "path": "s3://b/a", "signature_key": "entry"}, {"name": "b", "path": "s3://b/b"}]},
            {"a": "entry", "b": None},
            id="paths-without-top-level",
        ),
        pytest.param({"dir": "s3://b/models", "signature_key": "top"}, {"a": "top", "b": "top"}, id="dir-inherits"),
        pytest.param({"path": "s3://b/tf", "signature_key": "top"}, {"tf": "top"}, id="path"),
    ],
)
def test_tensorflow_signature_keys_come_from_the_entry_else_the_top_level(tmp_path, models, expected):
    model_set = load_spec(write(tmp_path, [tensorflow_api(models)])).models
    assert model_set is not None
    found = {}
    for name in expected:
        source = model_set.source(name)
        assert source is not None, name
        found[name] = source.signature_key
    assert found == expected


@pytest.mark.parametrize(
    ("handler_type", "compute", "inf", "not_applicable"),
    [
        pytest.param("tensorflow", None, 0, [], id="no-compute"),
        pytest.param("tensorflow", {"inf": 1}, 1, [], id="tensorflow-inf"),
        pytest.param(
            "tensorflow", {"cpu": 1, "mem": "4G", "inf": 2}, 2, ["compute.cpu", "compute.mem"], id="inf-beside-cpu"
        ),
        pytest.param("tensorflow", {"inf": 0, "gpu": 1}, 0, ["compute.gpu"], id="inf-zero"),
        pytest.param("python", {"inf": 1}, 1, ["compute.inf"], id="python-handler-ignores-inf"),
    ],
)
def test_compute_inf_is_read_and_the_rest_of_compute_reported(tmp_path, handler_type, compute, inf, not_applicable):
    # GIVEN an API with this compute block
    entry = tensorflow_api({"path": "s3://b/tf"}) if handler_type == "tensorflow" else api()
    if compute is not None:
        entry["compute"] = compute
    # WHEN it is loaded
    spec = load_spec(write(tmp_path, [entry]))
    # THEN compute.inf is a number, and only what has no effect is reported as not applicable
    assert spec.api.compute.inf == inf
    assert spec.not_applicable_fields() == not_applicable


@pytest.mark.parametrize(
    ("inf", "words"),
    [
        pytest.param(-1, "greater than or equal to 0; found -1", id="negative"),
        pytest.param(1.5, "valid integer; found 1.5", id="fraction"),
        pytest.param("2", "valid integer; found '2'", id="string"),
        pytest.param(True, "valid integer; found True", id="boolean"),
    ],
)
def test_a_bad_compute_inf_names_the_field(tmp_path, inf, words):
    entry = {**tensorflow_api({"path": "s3://b/tf"}), "compute": {"inf": inf}}
    with pytest.raises(SpecError) as raised:
        load_spec(write(tmp_path, [entry]))
    assert "compute.inf: Input should be" in str(raised.value) and words in str(raised.value), raised.value


def _cache(kind: str = "python", **sizes) -> dict:
    field = "multi_model_reloading" if kind == "python" else "models"
    return {"type": kind, field: {"dir": "s3://b/models", **sizes}}


@pytest.mark.parametrize(
    ("handler", "field", "words"),
    [
        pytest.param(
            _cache(cache_size=3),
            "handler.multi_model_reloading.disk_cache_size",
            "expected disk_cache_size with cache_size (both or neither), found cache_size: 3",
            id="memory-without-disk",
        ),
        pytest.param(
            _cache(disk_cache_size=6),
            "handler.multi_model_reloading.disk_cache_size",
            "found disk_cache_size: 6 and no cache_size",
            id="disk-without-memory",
        ),
        pytest.param(
            _cache(cache_size=7, disk_cache_size=6),
            "handler.multi_model_reloading.disk_cache_size",
            "found disk_cache_size: 6 < cache_size: 7",
            id="memory-above-disk",
        ),
        pytest.param(
            _cache(cache_size=0, disk_cache_size=6),
            "handler.multi_model_reloading.cache_size",
            "greater than or equal to 1; found 0",
            id="memory-zero",
        ),
        pytest.param(
            _cache(cache_size=2, disk_cache_size=-1),
            "handler.multi_model_reloading.disk_cache_size",
            "greater than or equal to 1; found -1",
            id="disk-negative",
        ),
        pytest.param(
            _cache(cache_size="3", disk_cache_size=6),
            "handler.multi_model_reloading.cache_size",
            "valid integer; found '3'",
            id="memory-a-string",
        ),
        pytest.param(
            _cache(cache_size=True, disk_cache_size=6),
            "handler.multi_model_reloading.cache_size",
            "valid integer; found True",
            id="memory-a-bool",
        ),
        pytest.param(
            _cache("tensorflow", cache_size=3),
            "handler.models.disk_cache_size",
            "both or neither",
            id="tensorflow-memory-without-disk",
        ),
    ],
)
def test_cache_sizes_follow_cortex_rules_and_name_the_field(tmp_path, handler, field, words):
    with pytest.raises(SpecError) as raised:
        load_spec(write(tmp_path, [api(**handler)]))
    message = str(raised.value)
    assert field in message and words in message, message


@pytest.mark.parametrize(
    "models",
    [
        pytest.param({"dir": "s3://b/models"}, id="dir"),
        pytest.param({"paths": [{"name": "a", "path": "s3://b/a"}]}, id="paths"),
        pytest.param({"path": "s3://b/a"}, id="path-an-extension"),
    ],
)
def test_cache_sizes_are_taken_with_any_source(tmp_path, models):
    spec = load_spec(write(tmp_path, [api(multi_model_reloading={**models, "cache_size": 2, "disk_cache_size": 2})]))
    assert spec.cache is not None and (spec.cache.memory, spec.cache.disk) == (2, 2)
    assert not any("cache" in name for name in spec.not_applicable_fields())
