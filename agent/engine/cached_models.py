"""`get_model` / `predict` with multi-model caching: resolve through the index, serve from memory, or
load on demand.

A request names a model and a version ("latest" or a number). The index (what S3 holds) says which
version that is; the registry says whether it is in memory. A hit is one lookup in the model's
published view, where "latest" is already resolved, and one write of the entry's last use
(agent.engine.hit_views); the rest of this module is the slow path.

A miss asks the model's worker for the version (`Request(demand=...)`): requests
for the same model coalesce there, so concurrent misses for one entry cause one download and one
`load_model` (single flight), and the load runs through the reconciler's own code (the store, the
loader, the LRU's insertion). The request waits at most `deadline` seconds; past it, it answers 503
and the load completes in the background. Requests for other, cached models never wait: they do
not touch the workers.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any

from agent.domain.caching import latest_candidates, latest_or_failed, resolve
from agent.domain.errors import ModelNotFoundError, ModelUnavailableError
from agent.domain.index import ModelState, Served
from agent.domain.requests import Request
from agent.engine.index import Index
from agent.engine.reconciler import Outcome
from agent.engine.registry import Registry, parse_version
from agent.engine.residency import LruCache
from agent.metrics import Metrics

Demand = Callable[[str, Request], "Future[Outcome]"]  # ModelWorkers.request


class CachedModels:
    def __init__(
        self,
        registry: Registry,
        index: Index,
        cache: LruCache,
        demand: Demand,
        metrics: Metrics,
        deadline: float,
        now: Callable[[], float],
    ) -> None:
        self._registry = registry
        self._index = index
        self._cache = cache
        self._demand = demand
        self._metrics = metrics
        self._deadline = deadline
        self._now = now
        self._views = cache.views.views  # model -> {version, "latest", ...: Slot}, published whole
        self._tick = cache.views.tick  # counts a hit and makes it the entry's last use
        self._misses = metrics.cache_misses

    def get(self, model: str | None = None, version: int | str | None = "latest") -> Any:
        return self.served(model, version).value

    def served(self, model: str | None = None, version: int | str | None = "latest") -> Served:
        try:  # a hit: one lookup in the model's published view, one write of its last use
            slot = self._views[model][version]
        except (KeyError, TypeError):  # not in memory, or a form of the version the view has no key for
            return self._resolve(model, version)
        slot.used = self._tick()
        return slot.served

    def _resolve(self, model: str | None, version: int | str | None) -> Served:
        name = self._registry.model_name(model)
        state = self._index.get(name)
        loaded = self._registry.loaded(name)
        number = parse_version(version)
        if number is None:
            number = self._latest(name, state, loaded)
        served = loaded.get(number)
        if served is not None:  # in memory after all (the view was being refreshed, or "01")
            self._cache.views.touch(name, number)
            return served
        return self._cold(name, state, number)

    def _latest(self, name: str, state: ModelState, loaded: Any) -> int:
        number = resolve(latest_candidates(state), state.loading, loaded)
        if number is None:
            number = latest_or_failed(state)  # every version failed: say why
        if number is None:
            raise ModelNotFoundError(self._unknown(name, state))
        return number

    def _cold(self, name: str, state: ModelState, number: int) -> Served:
        entry = state.versions.get(number)
        if entry is None:
            if not state.versions:
                raise ModelNotFoundError(self._unknown(name, state))
            raise ModelNotFoundError(
                f"model {name!r} has no version {number} in S3; versions: {sorted(state.versions)}"
            )
        if entry.listing.incomplete is not None:
            raise ModelNotFoundError(f"model {name!r} version {number} is not complete: {entry.listing.incomplete}")
        if number in state.settling:
            raise ModelNotFoundError(f"model {name!r} version {number} is settling (its upload may still be running)")
        failure = entry.failure
        if failure is not None and failure.fingerprint == entry.fingerprint and self._now() < failure.retry_at:
            raise ModelUnavailableError(
                f"model {name!r} version {number} failed to load ({failure.attempts} attempt(s)): {failure.error}"
            )
        self._misses.inc()
        deadline = self._now() + self._deadline
        outcome = self._wait(name, number, self._deadline)
        served = outcome.served.get(number)
        if served is None and outcome.error is None and self._now() < deadline:
            # Loaded, then evicted by another model's insertion before this request took it: once more.
            outcome = self._wait(name, number, max(0.0, deadline - self._now()))
            served = outcome.served.get(number)
        if served is not None:
            return served
        after = self._index.get(name).versions.get(number)
        reason = after.failure.error if after is not None and after.failure is not None else outcome.error
        raise ModelUnavailableError(
            f"model {name!r} version {number} could not be loaded: {reason or 'evicted at once'}"
        )

    def _wait(self, name: str, number: int, timeout: float) -> Outcome:
        """Ask the model's worker for the version and wait for that reconcile (single flight)."""
        future = self._demand(name, Request(demand=frozenset({number})))
        try:
            return future.result(timeout=timeout)
        except TimeoutError:
            raise ModelUnavailableError(
                f"model {name!r} version {number} is still loading after {self._deadline:g} s "
                "(cold_load_deadline); it serves once loaded"
            ) from None
        except CancelledError:
            raise ModelUnavailableError(f"model {name!r} version {number}: the agent is stopping") from None

    def _unknown(self, name: str, state: ModelState) -> str:
        if state.error is not None:
            return f"model {name!r} cannot serve: {state.error}"
        if state.versions:
            return f"model {name!r} has no complete version yet; versions: {sorted(state.versions)}"
        return f"model {name!r} is not known: S3 holds no version of it"
