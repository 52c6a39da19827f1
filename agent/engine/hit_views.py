"""With caching: per model, one published dict that a cache hit reads with one lookup.

A hit should cost what `get_model` costs without caching (the registry's dict lookup). So instead of
resolving "latest" through the index and writing the LRU's order per request, each model's view is
computed when something it depends on changes (the model's index value, its entries in memory) and
published whole, copy-on-write like the registry's dicts:

    {1: Slot, "1": Slot, 2: Slot, "2": Slot, "latest": Slot, None: Slot}

(the "latest" and None keys only when the version "latest" resolves to is in memory). A hit is
`views[model][version]` plus one write of the slot's `used`: a tick of the hit counter, which is also
the LRU's clock, so counting the hit and recording its recency are one `next()`. The LRU
(agent.engine.residency.LruCache) reads the slots' ticks when it must choose a victim.

Thread-safety: `refresh(model)` runs on whichever thread changed the model's value or entries (its
worker, or another model's worker evicting one of them); refreshes are serialised by `_lock`, a leaf,
and each reads the current index value and registry dict inside it, so the last refresh after a
change publishes a view of the final state. Hits read without a lock; a hit that races a refresh
gets the entry the previous view held (as a request that took its object just before).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from agent.domain.caching import latest_candidates, resolve
from agent.domain.errors import ModelNotFoundError
from agent.domain.index import ModelState, Served
from agent.engine.registry import Registry
from agent.metrics import FastCounter

Entry = tuple[str, int]  # (model, version)


class Slot:
    """One entry in memory as hits see it: its served object and its last use (a tick of the clock)."""

    __slots__ = ("served", "used")

    def __init__(self, served: Served, used: int) -> None:
        self.served = served
        self.used = used


class HitViews:
    def __init__(self, registry: Registry, state: Callable[[str], ModelState], clock: FastCounter) -> None:
        self._registry = registry
        self._state = state  # Index.get
        self._clock = clock
        self.tick: Callable[[], int] = clock.inc  # a hit: counted and made the most recent use
        self._lock = threading.Lock()
        self._slots: dict[Entry, Slot] = {}  # entries in memory (registry), with their last use
        self.views: dict[str | None, dict[Any, Slot]] = {}  # read by hits without the lock
        try:
            self._single: str | None = registry.model_name(None)  # `path`: requests may name no model
        except ModelNotFoundError:
            self._single = None

    def refresh(self, model: str, state: ModelState | None = None) -> None:
        """Publish `model`'s view from its current index value and entries in memory."""
        loaded = self._registry.loaded(model)
        if not loaded and model not in self.views:
            return  # most models of a large `dir`: nothing in memory, nothing published (the common case)
        with self._lock:
            loaded = self._registry.loaded(model)  # the newest, inside the lock
            view: dict[Any, Slot] = {}
            for version, served in loaded.items():
                slot = self._slots.get((model, version))
                if slot is None:
                    slot = self._slots[(model, version)] = Slot(served, self._clock.stamp())
                elif slot.served is not served:
                    slot.served = served  # an in-place update keeps its place in the LRU
                view[version] = view[str(version)] = slot
            for key in [key for key in self._slots if key[0] == model and key[1] not in loaded]:
                del self._slots[key]
            if view:
                state = self._state(model)
                latest = resolve(latest_candidates(state), state.loading, loaded)
                if latest is not None and latest in loaded:
                    view["latest"] = view[None] = view[latest]
                self._publish(model, view)
            else:
                self._publish(model, None)

    def touch(self, model: str, version: int) -> None:
        """A use found by the slow path (e.g. a version named as "01"): the entry becomes the most recent."""
        slot = self._slots.get((model, version))
        if slot is not None:
            slot.used = self.tick()

    def last_used(self) -> dict[Entry, int]:
        """Each entry in memory -> its last use (for the LRU's choice of a victim)."""
        with self._lock:
            return {key: slot.used for key, slot in self._slots.items()}

    def used(self, model: str, version: int) -> int | None:
        slot = self._slots.get((model, version))
        return slot.used if slot is not None else None

    def _publish(self, model: str, view: dict[Any, Slot] | None) -> None:
        names: list[str | None] = [model, None] if model == self._single else [model]
        for name in names:
            if view is None:
                self.views.pop(name, None)
            else:
                self.views[name] = view
