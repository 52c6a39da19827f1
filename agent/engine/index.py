"""The replica's index: each model's current value (agent.domain.index), published by its worker.

One writer per model (its worker) replaces the model's value whole; any thread reads it. Views are
derived here: `/models` (with what serves, from the registry), the settling versions readiness
waits for, and the gauges. Listeners hear every publication (readiness waits on them, not by polling).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from agent.domain.index import ModelState
from agent.domain.status import model_status
from agent.engine.registry import Registry

Listener = Callable[[str, ModelState], None]
NOTHING = ModelState()  # a model never published (built once: get() is on every cached request's path)


class Index:
    def __init__(self, registry: Registry, settle: float) -> None:
        self._registry = registry
        self._settle = settle
        self._states: dict[str, ModelState] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        # With caching: per model, the versions whose folder is on disk (LruCache.on_disk); None without.
        self.on_disk: Callable[[], dict[str, set[int]]] | None = None

    def get(self, model: str) -> ModelState:
        return self._states.get(model, NOTHING)

    def publish(self, model: str, state: ModelState) -> None:
        """Only the model's worker calls this."""
        with self._lock:
            self._states[model] = state
            listeners = list(self._listeners)
        for listener in listeners:
            listener(model, state)

    def listen(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def models(self) -> list[str]:
        """Every model listed or served."""
        with self._lock:
            listed = set(self._states)
        return sorted(listed | set(self._registry.models()))

    def settling(self) -> set[tuple[str, int]]:
        """(model, version) of the versions waiting for their listing to settle."""
        with self._lock:
            states = list(self._states.items())
        return {(model, version) for model, state in states for version in state.settling}

    def snapshot(self, model: str | None = None) -> dict[str, Any]:
        """`/models`: every model (or the one named), derived from its value and what serves."""
        names = [model] if model is not None else self.models()
        folders = self.on_disk() if self.on_disk is not None else None
        result = {}
        for name in names:
            on_disk = folders.get(name, set()) if folders is not None else None
            status = model_status(self.get(name), self._registry.loaded(name), self._settle, on_disk)
            if status is not None:
                result[name] = status
        return result
