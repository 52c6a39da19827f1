"""`tensorflow_client.predict`: user versions mapped to TF Serving's internal ones, and the one retry
when a swap overtakes a request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.api.tensorflow_client import TensorFlowClient
from agent.domain.errors import ModelNotFoundError, VersionGoneError
from agent.domain.tfserving import Servable
from agent.engine.registry import Registry, Served


def serve(registry: Registry, version: int, internal: int) -> Servable:
    servable = Servable("m", version, internal, "serving_default", {"x": 1})
    registry.swap_in("m", Served(version, f"fp{internal}", Path(f"/models/m/{internal}"), servable, 0.0))
    return servable


class RecordingPredictor:
    """Answers with the internal version asked for; `gone` internal versions raise VersionGoneError,
    after running `before_gone` (a swap that overtakes the request)."""

    def __init__(self, gone: set[int] = frozenset(), before_gone: Any = None) -> None:
        self.gone = gone
        self.before_gone = before_gone
        self.asked: list[int] = []

    def predict(self, servable: Servable, model_input: Any) -> dict[str, Any]:
        self.asked.append(servable.internal_version)
        if servable.internal_version in self.gone:
            if self.before_gone:
                self.before_gone()
            raise VersionGoneError(f"version {servable.internal_version} is gone")
        return {"y": servable.internal_version}


@pytest.mark.parametrize(
    ("version", "internal"),
    [
        pytest.param("latest", 200, id="latest"),
        pytest.param(None, 200, id="none-is-latest"),
        pytest.param(1, 100, id="int"),
        pytest.param("1", 100, id="numeric-string"),
    ],
)
def test_user_versions_map_to_internal_versions(version, internal):
    registry = Registry(single_model="m")
    serve(registry, 1, 100)
    serve(registry, 2, 200)
    assert TensorFlowClient(registry, RecordingPredictor()).predict({"x": [[1]]}, model_version=version) == {
        "y": internal
    }


def test_a_request_overtaken_by_a_swap_goes_once_more_to_the_new_copy():
    # GIVEN version 1 served as 100, and TF Serving unloading 100 just as it is asked, after a swap to 101
    registry = Registry(single_model="m")
    serve(registry, 1, 100)
    predictor = RecordingPredictor(gone={100}, before_gone=lambda: serve(registry, 1, 101))
    # WHEN version 1 is asked for THEN the answer comes from 101
    assert TensorFlowClient(registry, predictor).predict({"x": [[1]]}, model_version=1) == {"y": 101}
    assert predictor.asked == [100, 101]


def test_a_version_gone_without_a_swap_is_an_error():
    registry = Registry(single_model="m")
    serve(registry, 1, 100)
    with pytest.raises(VersionGoneError):
        TensorFlowClient(registry, RecordingPredictor(gone={100})).predict({"x": [[1]]})


def test_a_version_removed_meanwhile_is_not_found():
    registry = Registry(single_model="m")
    serve(registry, 1, 100)
    predictor = RecordingPredictor(gone={100}, before_gone=lambda: registry.remove("m", 1))
    with pytest.raises(ModelNotFoundError):
        TensorFlowClient(registry, predictor).predict({"x": [[1]]}, model_version=1)
