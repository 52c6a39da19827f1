"""What serves: the objects requests use, per model and version. Nothing else.

Served objects are swapped copy-on-write, per model: a model's versions are a dict that is never
changed once published, replaced whole by one assignment. A reader takes it with one lookup and
never sees half an update; a swap costs the size of one model, not of all. The old object is
dropped by the swap, so no reference to it stays in the runtime and in-flight requests finish on
the one they hold. How each version fares (`/models`) is derived from the index (engine.index).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from agent.domain.errors import ModelNotFoundError
from agent.domain.index import Served


class Lookup(Protocol):
    """Where requests find their object: the registry (every version loaded) or, with caching, the
    cache (agent.engine.cached_models), which loads on demand."""

    def served(self, model: str | None = None, version: int | str | None = "latest") -> Served: ...


class Registry:
    def __init__(self, single_model: str | None = None) -> None:
        self._served: dict[str, Mapping[int, Served]] = {}
        self._lock = threading.Lock()  # orders writers; readers take one published dict without it
        self._single = single_model
        # Told after each write, outside the lock (with caching: the hit views, agent.engine.hit_views).
        self.on_change: Callable[[str], None] = _nothing

    # -- reads (any thread) --------------------------------------------------------------
    def get(self, model: str | None = None, version: int | str | None = "latest") -> Any:
        return self.served(model, version).value

    def served(self, model: str | None = None, version: int | str | None = "latest") -> Served:
        name = self.model_name(model)
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

    def loaded(self, model: str) -> Mapping[int, Served]:
        """The model's published versions (never changed once published: no copy needed)."""
        return self._served.get(model, {})

    def models(self) -> list[str]:
        return sorted(self._served)

    # -- writes (the model's worker) -----------------------------------------------------
    def swap_in(self, model: str, served: Served) -> Served | None:
        """Make `served` the object for its version; return the one it replaced (drop it)."""
        with self._lock:
            versions = dict(self._served.get(model, {}))
            old = versions.get(served.version)
            versions[served.version] = served
            self._served[model] = versions
        self.on_change(model)
        return old

    def remove(self, model: str, version: int) -> Served | None:
        with self._lock:
            versions = dict(self._served.get(model, {}))
            old = versions.pop(version, None)
            if versions:
                self._served[model] = versions
            else:
                self._served.pop(model, None)
        self.on_change(model)
        return old

    def model_name(self, model: str | None) -> str:
        """The model a request means: the one named, or the only one (`path`)."""
        if model is not None:
            return model
        if self._single is not None:
            return self._single
        raise ModelNotFoundError(f"model_name is required: this API serves several models {sorted(self._served)}")


def parse_version(version: int | str | None) -> int | None:
    """None for "latest"; an int for an int or a numeric string; ModelNotFoundError otherwise."""
    if version is None or version == "latest":
        return None
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    if isinstance(version, str) and version.isdigit():
        return int(version)
    raise ModelNotFoundError(f"expected model_version 'latest', an int or a numeric string, found {version!r}")


def _nothing(model: str) -> None:
    pass
