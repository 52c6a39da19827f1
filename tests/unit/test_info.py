"""`/info`'s pure parts: the Python handler's model metadata from the index's /models view, TensorFlow signatures in
Cortex's short form, and the TensorFlow answer built from TF Serving's metadata (read once per loaded version)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.api.info import PythonInfo, TensorFlowInfo, python_metadata
from agent.domain.errors import TemporaryError
from agent.domain.index import Failure, ModelState, Served, VersionEntry
from agent.domain.signatures import dtype_name, tensor_shape, tensor_signatures
from agent.domain.tfserving import Servable
from agent.domain.versions import ObjectInfo, VersionListing
from agent.engine.index import Index
from agent.engine.registry import Registry


def status(state: str, loaded_at: float | None = None) -> dict[str, Any]:
    return {"state": state, "fingerprint": "f", "error": None, "loaded_at": loaded_at, "attempts": 0}


@pytest.mark.parametrize(
    ("snapshot", "expected"),
    [
        pytest.param({}, {}, id="no models"),
        pytest.param(
            {"iris": {"latest": 2, "loaded": [1, 2], "error": None,
                      "versions": {"1": status("ready", 100.5), "2": status("ready", 200.0)}}},
            {"iris": {"versions": ["1", "2"], "loaded": ["1", "2"], "latest": "2", "timestamps": [100, 200]}},
            id="two versions loaded",
        ),
        pytest.param(
            {"iris": {"latest": 1, "loaded": [1], "error": None,
                      "versions": {"1": status("ready", 100.0), "3": status("failed"), "10": status("waiting")}}},
            {"iris": {"versions": ["1", "3", "10"], "loaded": ["1"], "latest": "1", "timestamps": [100, None, None]}},
            id="versions in S3 not loaded are listed, in numeric order",
        ),
        pytest.param(
            {"wine": {"latest": None, "loaded": [], "error": "files beside version folders", "versions": {}}},
            {"wine": {"versions": [], "loaded": [], "latest": None, "timestamps": [],
                      "error": "files beside version folders"}},
            id="an invalid model says why",
        ),
    ],
)  # fmt: skip
def test_python_metadata_lists_versions_known_in_s3_and_loaded(snapshot, expected):
    assert python_metadata(snapshot) == expected


def test_python_info_reads_the_index_view():
    # GIVEN a model with version 1 serving and version 2 failed, as the index derives /models
    registry = Registry()
    registry.swap_in("iris", Served(1, "abc", Path("/m/iris/1"), object(), 1000.0))
    failure = Failure("def", "load_model raised", 1, 2000.0)
    state = ModelState({v: VersionEntry(listing(v), 0.0, failure if v == 2 else None) for v in (1, 2)}, listed=True)
    index = Index(registry, settle=0.0)
    index.publish("iris", state)
    # WHEN /info is answered THEN both versions show, one loaded
    assert PythonInfo(index.snapshot)() == {
        "model_metadata": {"iris": {"versions": ["1", "2"], "loaded": ["1"], "latest": "1", "timestamps": [1000, None]}}
    }


def listing(version: int) -> VersionListing:
    return VersionListing(version, (ObjectInfo("model.pkl", 1, "e"),), "abc" if version == 1 else "def", f"{version}/")


@pytest.mark.parametrize(
    ("dtype", "name"),
    [("DT_FLOAT", "float32"), ("DT_DOUBLE", "float64"), ("DT_HALF", "float16"), ("DT_INT64", "int64"),
     ("DT_STRING", "string"), ("DT_BOOL", "bool"), ("DT_UINT8", "uint8"), ("DT_BFLOAT16", "bfloat16")],
)  # fmt: skip
def test_dtype_names_are_tensorflows(dtype, name):
    assert dtype_name(dtype) == name


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        pytest.param({"dim": [{"size": "-1"}, {"size": "3"}]}, [-1, 3], id="batch of 3"),
        pytest.param({"dim": [{"size": "-1"}, {}]}, [-1, 0], id="a size left out is protobuf's default, 0"),
        pytest.param({}, ["scalar"], id="scalar"),
        pytest.param({"unknownRank": True}, ["unknown"], id="unknown rank"),
    ],
)
def test_tensor_shapes_as_cortex_gave_them(shape, expected):
    assert tensor_shape(shape) == expected


SIGNATURE_DEFS = {
    "serving_default": {
        "inputs": {"x": {"name": "serving_default_x:0", "dtype": "DT_FLOAT",
                         "tensorShape": {"dim": [{"size": "-1"}, {"size": "-1"}]}}},
        "outputs": {"y": {"name": "StatefulPartitionedCall:0", "dtype": "DT_FLOAT",
                          "tensorShape": {"dim": [{"size": "-1"}, {"size": "-1"}]}}},
        "methodName": "tensorflow/serving/predict",
    },
    "__saved_model_init_op": {
        "outputs": {"__saved_model_init_op": {"name": "NoOp", "tensorShape": {"unknownRank": True}}}
    },
}  # fmt: skip


def test_tensor_signatures_give_type_and_shape_per_name():
    inputs = SIGNATURE_DEFS["serving_default"]["inputs"]
    assert tensor_signatures(inputs) == {"x": {"shape": [-1, -1], "type": "float32"}}


class RecordingReader:
    """TF Serving's metadata, recording each call; `failing` internal versions raise as an unreachable one does."""

    def __init__(self, failing: tuple[int, ...] = ()) -> None:
        self.calls: list[tuple[str, int]] = []
        self.failing = failing

    def signature_defs(self, model: str, version: int) -> dict[str, Any]:
        self.calls.append((model, version))
        if version in self.failing:
            raise TemporaryError(f"reading the signatures of {model!r} (TF Serving version {version}): UNAVAILABLE")
        return SIGNATURE_DEFS


def serve_tf(registry: Registry, model: str, version: int, internal: int, loaded_at: float = 50.0) -> None:
    servable = Servable(model, version, internal, "serving_default", {"x": 1})
    registry.swap_in(model, Served(version, f"fp{internal}", Path(f"/m/{model}/{internal}"), servable, loaded_at))


def test_tensorflow_info_gives_each_loaded_version_its_signature_and_reads_it_once():
    # GIVEN version 3 of "temperature" loaded as TF Serving's version 7
    registry, reader = Registry(), RecordingReader()
    serve_tf(registry, "temperature", 3, 7)
    info = TensorFlowInfo(registry, reader)
    # WHEN /info is answered twice
    first, second = info(), info()
    # THEN it names the signature, inputs and outputs with types and shapes, and asked TF Serving once
    assert (
        first
        == second
        == {
            "model_metadata": {
                "temperature-3": {
                    "model": "temperature",
                    "version": "3",
                    "tfserving_version": 7,
                    "timestamp": 50,
                    "signature_key": "serving_default",
                    "signature_def": SIGNATURE_DEFS,
                    "input_signatures": {"x": {"shape": [-1, -1], "type": "float32"}},
                    "output_signatures": {"y": {"shape": [-1, -1], "type": "float32"}},
                }
            }
        }
    )
    assert reader.calls == [("temperature", 7)]


def test_tensorflow_info_reads_an_updated_version_again_and_reports_a_failed_read_in_place():
    # GIVEN version 3 read once, then updated in place (TF Serving's version 8), and version 4 unreadable
    registry, reader = Registry(), RecordingReader(failing=(9,))
    serve_tf(registry, "temperature", 3, 7)
    info = TensorFlowInfo(registry, reader)
    info()
    serve_tf(registry, "temperature", 3, 8)
    serve_tf(registry, "temperature", 4, 9)
    # WHEN /info is answered
    metadata = info()["model_metadata"]
    # THEN the new content's signature is read, and version 4 carries the error beside the others
    assert reader.calls == [("temperature", 7), ("temperature", 8), ("temperature", 9)]
    assert metadata["temperature-3"]["tfserving_version"] == 8
    assert "UNAVAILABLE" in metadata["temperature-4"]["error"]
    assert "signature_def" not in metadata["temperature-4"]
