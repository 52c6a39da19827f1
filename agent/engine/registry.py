"""What is loaded and how each version fares: the served objects and the status behind `/models`.

Served objects are swapped copy-on-write, per model: a model's versions are a dict that is never
changed once published, replaced whole by one assignment. A reader takes it with one lookup and
never sees half an update; a swap costs the size of one model, not of all. The old object is
dropped by the swap, so no reference to it stays in the runtime and in-flight requests finish on
the one they hold.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent.domain.errors import ModelNotFoundError
from agent.domain.tfserving import Servable

State = Literal["loading", "ready", "failed", "waiting"]


@dataclass(frozen=True)
class Served:
    version: int
    fingerprint: str
    path: Path
    value: Any  # what load_model returned
    loaded_at: float


@dataclass(frozen=True)
class VersionStatus:
    state: State
    fingerprint: str
    error: str | None = None
    loaded_at: float | None = None
    attempts: int = 0


@dataclass
class ModelStatus:
    versions: dict[int, VersionStatus] = field(default_factory=dict)
    error: str | None = None  # the model's prefix as a whole is invalid
    last_event: float | None = None
    last_reload: float | None = None


class Registry:
    def __init__(self, single_model: str | None = None) -> None:
        self._served: dict[str, dict[int, Served]] = {}
        self._status: dict[str, ModelStatus] = {}
        self._lock = threading.Lock()
        self._single = single_model

    # -- reads (any thread) --------------------------------------------------------------
    def get(self, model: str | None = None, version: int | str | None = "latest") -> Any:
        return self.served(model, version).value

    def served(self, model: str | None = None, version: int | str | None = "latest") -> Served:
        name = self._model_name(model)
        versions = self._served.get(name)
        if not versions:
            raise ModelNotFoundError(f"model {name!r} is not loaded; loaded models: {sorted(self._served)}")
        number = parse_version(version)
        if number is None:
            return versions[max(versions)]
        if number not in versions:
            raise ModelNotFoundError(
                f"model {name!r} has no version {number} loaded; loaded versions: {sorted(versions)}"
            )
        return versions[number]

    def loaded(self, model: str) -> dict[int, Served]:
        return dict(self._served.get(model, {}))

    def models(self) -> list[str]:
        with self._lock:
            return sorted(set(self._served) | set(self._status))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            result = {}
            for name in sorted(set(self._served) | set(self._status)):
                status = self._status.get(name, ModelStatus())
                served = self._served.get(name, {})
                result[name] = {
                    "latest": max(served) if served else None,
                    "loaded": sorted(served),
                    "error": status.error,
                    "last_event": status.last_event,
                    "last_reload": status.last_reload,
                    "versions": {
                        str(v): {
                            "state": s.state,
                            "fingerprint": s.fingerprint[:12],
                            "error": s.error,
                            "loaded_at": s.loaded_at,
                            "attempts": s.attempts,
                            **_tfserving_version(served.get(v)),
                        }
                        for v, s in sorted(status.versions.items())
                    },
                }
            return result

    # -- writes (the model's worker) -----------------------------------------------------
    def swap_in(self, model: str, served: Served) -> Served | None:
        """Make `served` the object for its version; return the one it replaced (drop it)."""
        with self._lock:
            versions = dict(self._served.get(model, {}))
            old = versions.get(served.version)
            versions[served.version] = served
            self._served[model] = versions
            status = self._status.setdefault(model, ModelStatus())
            status.versions[served.version] = VersionStatus("ready", served.fingerprint, loaded_at=served.loaded_at)
            status.last_reload = served.loaded_at
            return old

    def remove(self, model: str, version: int) -> Served | None:
        with self._lock:
            versions = dict(self._served.get(model, {}))
            old = versions.pop(version, None)
            if versions:
                self._served[model] = versions
            else:
                self._served.pop(model, None)
            status = self._status.get(model)
            if status is not None:
                status.versions.pop(version, None)
                status.last_reload = time.time()
                if not status.versions and not status.error and model not in self._served:
                    del self._status[model]
            return old

    def set_state(
        self, model: str, version: int, state: State, fingerprint: str, error: str | None = None, attempts: int = 0
    ) -> None:
        with self._lock:
            status = self._status.setdefault(model, ModelStatus())
            previous = status.versions.get(version)
            loaded_at = previous.loaded_at if previous else None
            status.versions[version] = VersionStatus(state, fingerprint, error, loaded_at, attempts)

    def record_failure(self, model: str, version: int, fingerprint: str, error: str, attempts: int) -> None:
        """`fingerprint` of `version` failed to load. When an older copy of the version still serves (a failed
        update in place), the version stays `ready` with the fingerprint that serves, the error beside it."""
        with self._lock:
            status = self._status.setdefault(model, ModelStatus())
            served = self._served.get(model, {}).get(version)
            if served is None:
                status.versions[version] = VersionStatus("failed", fingerprint, error, None, attempts)
            else:
                error = f"the update in place to {fingerprint[:12]} failed, the previous content serves: {error}"
                status.versions[version] = VersionStatus("ready", served.fingerprint, error, served.loaded_at, attempts)

    def prune(self, model: str, present: set[int]) -> None:
        """Drop the status of versions neither in S3 (`present`) nor served."""
        with self._lock:
            status = self._status.get(model)
            if status is None:
                return
            served = self._served.get(model, {})
            for version in [v for v in status.versions if v not in present and v not in served]:
                del status.versions[version]
            if not status.versions and not status.error and model not in self._served:
                del self._status[model]

    def set_model_error(self, model: str, error: str | None) -> None:
        with self._lock:
            if error is None and model not in self._status:
                return
            self._status.setdefault(model, ModelStatus()).error = error

    def note_event(self, model: str, at: float) -> None:
        with self._lock:
            self._status.setdefault(model, ModelStatus()).last_event = at

    def _model_name(self, model: str | None) -> str:
        if model is not None:
            return model
        if self._single is not None:
            return self._single
        raise ModelNotFoundError(f"model_name is required: this API serves several models {sorted(self._served)}")


def _tfserving_version(served: Served | None) -> dict[str, int]:
    """For a TensorFlow model: the version number TF Serving serves it as (its direct clients name that one)."""
    if served is not None and isinstance(served.value, Servable):
        return {"tfserving_version": served.value.internal_version}
    return {}


def parse_version(version: int | str | None) -> int | None:
    """None for "latest"; an int for an int or a numeric string; ModelNotFoundError otherwise."""
    if version is None or version == "latest":
        return None
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    if isinstance(version, str) and version.isdigit():
        return int(version)
    raise ModelNotFoundError(f"expected model_version 'latest', an int or a numeric string, found {version!r}")
