"""`tensorflow_client` for the TensorFlow handler: Cortex 0.35's `predict(model_input, model_name, model_version)`.

The user names their own versions; the registry maps each to the `Servable` naming the
internal version TF Serving loaded it as, and the prediction goes there.
"""

from __future__ import annotations

from typing import Any, Protocol

from agent.domain.errors import VersionGoneError
from agent.domain.tfserving import Servable
from agent.engine.registry import Lookup


class Predictor(Protocol):
    def predict(self, servable: Servable, model_input: Any) -> dict[str, Any]: ...


class TensorFlowClient:
    def __init__(self, lookup: Lookup, tfserving: Predictor) -> None:
        self.lookup = lookup  # the cache replaces the registry here when caching is on
        self._tfserving = tfserving

    def predict(
        self, model_input: Any, model_name: str | None = None, model_version: int | str | None = "latest"
    ) -> dict[str, Any]:
        """Run `model_input` (a dict of input name -> value) through that model version in TF Serving.

        `model_version` is "latest" (or None), an int or a numeric string. Returns a dict of output
        name -> the flat list of its values, as Cortex 0.35's client returned them (reshape with the
        shape you know; string tensors come back as str). Raises ModelNotFoundError (answered with
        404) for an unknown model or version.
        """
        version = "latest" if model_version is None else model_version
        servable: Servable = self.lookup.served(model_name, version).value
        try:
            return self._tfserving.predict(servable, model_input)
        except VersionGoneError:
            # Swapped (an in-place update) or removed between the lookup and the call: look once more.
            current: Servable = self.lookup.served(model_name, version).value
            if current is servable:
                raise
            return self._tfserving.predict(current, model_input)
