"""`GET /info`: `{"model_metadata": ...}`, as Cortex 0.35 answered it, from what the agent already knows.

- Python handler (`PythonInfo`): per model, its versions in S3 as the agent last listed them
  (whatever their state), the versions loaded, the latest, and when each was loaded. The
  index's `/models` view is the source: no S3 call per request.
- TensorFlow handler (`TensorFlowInfo`): per loaded version, keyed `<model>-<version>` as Cortex
  keyed them, the SignatureDefs from TF Serving's GetModelMetadata, the signature predictions use,
  and its inputs and outputs in short form (type and shape per name). One GetModelMetadata per
  version the first time `/info` shows it: a loaded folder never changes, nor does its signature.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from agent.domain.errors import ReloaderError
from agent.domain.index import Served
from agent.domain.signatures import tensor_signatures
from agent.domain.tfserving import Servable
from agent.engine.registry import Registry


class SignatureReader(Protocol):
    def signature_defs(self, model: str, version: int) -> dict[str, Any]: ...


def model_info(
    registry: Registry, snapshot: Callable[[], Mapping[str, Any]], tfserving: SignatureReader | None = None
) -> Callable[[], dict[str, Any]]:
    """What answers `/info` for a handler type: TensorFlow's when given TF Serving, else the Python handler's
    (from `snapshot`, the `/models` view the index derives)."""
    return TensorFlowInfo(registry, tfserving) if tfserving is not None else PythonInfo(snapshot)


class PythonInfo:
    def __init__(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        self._snapshot = snapshot

    def __call__(self) -> dict[str, Any]:
        return {"model_metadata": python_metadata(self._snapshot())}


def python_metadata(snapshot: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per model of the `/models` view: versions known in S3 and loaded, as Cortex's strings."""
    metadata: dict[str, Any] = {}
    for name, model in snapshot.items():
        statuses = model["versions"]
        loaded = sorted(model["loaded"])
        versions = sorted({int(version) for version in statuses} | set(loaded))
        entry: dict[str, Any] = {
            "versions": [str(version) for version in versions],
            "loaded": [str(version) for version in loaded],
            "latest": None if model["latest"] is None else str(model["latest"]),
            # when each version was loaded (seconds since the epoch), null for one not loaded
            "timestamps": [_loaded_at(statuses.get(str(version)), version in loaded) for version in versions],
        }
        if model.get("error"):
            entry["error"] = model["error"]
        metadata[name] = entry
    return metadata


def _loaded_at(status: Mapping[str, Any] | None, loaded: bool) -> int | None:
    if not loaded or status is None or status.get("loaded_at") is None:
        return None
    return int(status["loaded_at"])


class TensorFlowInfo:
    def __init__(self, registry: Registry, tfserving: SignatureReader) -> None:
        self._registry = registry
        self._tfserving = tfserving
        self._signatures: dict[tuple[str, int], dict[str, Any]] = {}  # (model, TF Serving version) -> defs
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        shown: set[tuple[str, int]] = set()
        for model in self._registry.models():
            for version, served in sorted(self._registry.loaded(model).items()):
                servable: Servable = served.value
                shown.add((model, servable.internal_version))
                metadata[f"{model}-{version}"] = self._version(served, servable)
        with self._lock:  # forget the signatures of versions no longer loaded
            for key in set(self._signatures) - shown:
                del self._signatures[key]
        return {"model_metadata": metadata}

    def _version(self, served: Served, servable: Servable) -> dict[str, Any]:
        key = (servable.model, servable.internal_version)
        with self._lock:
            signature_defs = self._signatures.get(key)
        if signature_defs is None:
            try:
                signature_defs = self._tfserving.signature_defs(servable.model, servable.internal_version)
            except ReloaderError as error:  # TF Serving restarting, say: this version says so, the others answer
                return {**_identity(served, servable), "error": str(error)}
            with self._lock:
                self._signatures[key] = signature_defs
        return tensorflow_version_metadata(served, servable, signature_defs)


def tensorflow_version_metadata(
    served: Served, servable: Servable, signature_defs: Mapping[str, Any]
) -> dict[str, Any]:
    """One loaded TensorFlow version's `/info` entry, from its SignatureDefs (protobuf's JSON mapping)."""
    signature = signature_defs.get(servable.signature_key, {})
    return {
        **_identity(served, servable),
        "signature_key": servable.signature_key,
        "signature_def": dict(signature_defs),
        "input_signatures": tensor_signatures(signature.get("inputs", {})),
        "output_signatures": tensor_signatures(signature.get("outputs", {})),
    }


def _identity(served: Served, servable: Servable) -> dict[str, Any]:
    return {
        "model": servable.model,
        "version": str(servable.version),
        "tfserving_version": servable.internal_version,
        "timestamp": int(served.loaded_at),
    }
