"""A cache hit through the published views (agent.engine.hit_views): "latest" resolved ahead of the
request, the hit counted and made the entry's last use, evicted entries gone from the view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.boundaries.store import ModelStore
from agent.domain.caching import CacheSizes
from agent.domain.index import ModelState, Served, VersionEntry
from agent.domain.versions import ObjectInfo, VersionListing
from agent.engine.cached_models import CachedModels
from agent.engine.hit_views import HitViews
from agent.engine.index import Index
from agent.engine.registry import Registry
from agent.engine.residency import LruCache
from agent.metrics import Metrics


class Demands:
    """Records the loads a request asks for (a hit asks for none)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []

    def __call__(self, model: str, request: Any) -> Any:
        self.asked.append((model, request.demand))
        raise AssertionError("this test serves only hits")


def state(*versions: int, loading: frozenset[int] = frozenset()) -> ModelState:
    entries = {
        v: VersionEntry(VersionListing(v, (ObjectInfo("model.pkl", 1, "e", 0.0),), f"fp{v}", f"{v}/"), 0.0)
        for v in versions
    }
    return ModelState(entries, listed=True, loading=loading)


def served(version: int) -> Served:
    return Served(version, f"fp{version}", Path(f"/store/{version}"), object(), 0.0)


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Registry, Index, LruCache, CachedModels, Metrics, Demands]:
    registry = Registry()
    index = Index(registry, 0.0)
    metrics = Metrics()
    views = HitViews(registry, index.get, metrics.cache_hits)
    index.listen(views.refresh)
    cache = LruCache(registry, ModelStore(tmp_path), CacheSizes(2, 4), metrics, None, views)
    demands = Demands()
    models = CachedModels(registry, index, cache, demands, metrics, 30.0, lambda: 0.0)
    return registry, index, cache, models, metrics, demands


def test_latest_is_resolved_in_the_view_and_moves_only_once_the_new_version_is_in_memory(parts):
    _, index, cache, models, _, demands = parts
    # GIVEN version 1 of m in memory, and S3 holding 1
    index.publish("m", state(1))
    one = served(1)
    cache.swap_in("m", one)
    assert models.served("m", "latest") is one and models.served("m", 1) is one and models.served("m", "1") is one
    # WHEN version 2 appears and is being loaded THEN latest is still 1, from the view
    index.publish("m", state(1, 2, loading=frozenset({2})))
    assert models.served("m") is one
    # WHEN 2 is in memory THEN latest moves to it
    two = served(2)
    cache.swap_in("m", two)
    index.publish("m", state(1, 2))
    assert models.served("m", "latest") is two
    assert demands.asked == []


def test_each_hit_is_counted_and_orders_the_lru(parts):
    registry, index, cache, models, metrics, _ = parts
    # GIVEN a and b in a cache of 2, a inserted first
    for model in ("a", "b"):
        index.publish(model, state(1))
        cache.swap_in(model, served(1))
    before = metrics.cache_hits.value
    # WHEN a is asked for three times
    for _ in range(3):
        models.served("a")
    # THEN three hits are counted
    assert metrics.cache_hits.value - before == 3
    # AND a is the most recent use: inserting c evicts b
    index.publish("c", state(1))
    assert [model for model, _ in cache.swap_in("c", served(1)).evicted] == ["b"]
    # AND b's view is gone: its entry is in no published dict, so nothing keeps the object alive
    assert "b" not in cache.views.views and registry.models() == ["a", "c"]


def test_a_single_model_is_found_without_its_name(tmp_path):
    registry = Registry(single_model="only")
    index = Index(registry, 0.0)
    metrics = Metrics()
    views = HitViews(registry, index.get, metrics.cache_hits)
    index.listen(views.refresh)
    cache = LruCache(registry, ModelStore(tmp_path), CacheSizes(1, 1), metrics, None, views)
    models = CachedModels(registry, index, cache, Demands(), metrics, 30.0, lambda: 0.0)
    index.publish("only", state(3))
    three = served(3)
    cache.swap_in("only", three)
    assert models.served() is three and models.served(None, 3) is three
