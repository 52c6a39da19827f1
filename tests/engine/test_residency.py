"""The LRU of entries in memory and folders on disk (agent.engine.residency.LruCache), on a real store."""

from __future__ import annotations

from pathlib import Path

from agent.boundaries.store import ModelStore
from agent.domain.caching import CacheSizes
from agent.domain.index import Served
from agent.engine.registry import Registry
from agent.engine.residency import LruCache
from agent.engine.scheduler import Scheduler
from agent.metrics import Metrics
from tests.fakes import ManualClock, SerialExecutor


def installed(store: ModelStore, cache: LruCache, model: str, version: int = 1) -> Path:
    fingerprint = f"fp-{model}-{version}"

    def fill(folder: Path) -> None:
        (folder / "model.txt").write_text(model)

    folder = store.install(model, version, fingerprint, fill)
    cache.installed(model, version, fingerprint, folder)
    return folder


def served(model: str, folder: Path, version: int = 1) -> Served:
    return Served(version, f"fp-{model}-{version}", folder, object(), 0.0)


def make(tmp_path: Path, memory: int, disk: int, retire_after: float = 0.0):
    clock = ManualClock()
    scheduler = Scheduler(clock, SerialExecutor())
    store = ModelStore(tmp_path, retire_after=retire_after, later=scheduler.call_later)
    registry = Registry()
    return registry, store, LruCache(registry, store, CacheSizes(memory, disk), Metrics()), scheduler, clock


def test_an_insertion_evicts_the_least_recently_used_entry_at_once(tmp_path):
    # GIVEN a cache of 2 holding a and b, a used last
    registry, store, cache, _, _ = make(tmp_path, 2, 3)
    for model in ("a", "b"):
        cache.swap_in(model, served(model, installed(store, cache, model)))
    cache.touch("a", 1)
    # WHEN c is inserted THEN b (least recently used) leaves memory, at once, and its folder stays
    swapped = cache.swap_in("c", served("c", installed(store, cache, "c")))
    assert [model for model, _ in swapped.evicted] == ["b"]
    assert registry.models() == ["a", "c"]
    assert cache.on_disk()["b"] == {1}


def test_an_entry_being_loaded_is_never_evicted(tmp_path):
    # GIVEN a cache of 1 holding a, while a's in-place update is being loaded
    registry, store, cache, _, _ = make(tmp_path, 1, 2)
    cache.swap_in("a", served("a", installed(store, cache, "a")))
    cache.begin_load("a", 1)
    # WHEN b is inserted THEN a stays (the cache holds 1 plus those loading)
    assert cache.swap_in("b", served("b", installed(store, cache, "b"))).evicted == []
    cache.end_load("a", 1)
    # AND the next insertion makes room again
    assert len(cache.swap_in("c", served("c", installed(store, cache, "c"))).evicted) == 2
    assert registry.models() == ["c"]


def test_disk_evicts_only_folders_whose_entry_is_not_in_memory(tmp_path):
    # GIVEN a disk of 2 folders: a in memory, b only on disk
    _, store, cache, _, _ = make(tmp_path, 1, 2)
    a = installed(store, cache, "a")
    cache.swap_in("a", served("a", a))
    b = installed(store, cache, "b")
    # WHEN c's folder is written THEN b's goes (a's is in memory, c's is the new one)
    c = installed(store, cache, "c")
    assert a.is_dir() and c.is_dir() and not b.exists()
    assert cache.counts()["disk"] == 2


def test_a_retiring_folder_a_new_load_needs_is_kept(tmp_path):
    # GIVEN b's folder evicted from disk, retiring for 30 s
    _, store, cache, scheduler, clock = make(tmp_path, 1, 1, retire_after=30)
    installed(store, cache, "a")
    b = installed(store, cache, "b")
    a = store.folder("a", 1, "fp-a-1")
    assert cache.counts()["retiring"] == 1
    # WHEN a is loaded again before it is removed THEN its folder is kept, not downloaded again
    cache.installing("a", 1, "fp-a-1")
    clock.advance(31)
    scheduler.run_due()
    assert a.is_dir() and b.is_dir()
    assert cache.counts()["retiring"] == 0


def test_at_most_disk_cache_size_folders_retire_at_once(tmp_path):
    # GIVEN a disk of 2 folders whose evicted folders retire for 30 s
    _, store, cache, scheduler, clock = make(tmp_path, 1, 2, retire_after=30)
    # WHEN 6 folders are written in turn (4 evicted from disk, each starting to retire)
    paths = [installed(store, cache, f"m{number}") for number in range(6)]
    # THEN only 2 retire: the oldest retiring ones went at once, the newest wait for retire_after
    assert cache.counts() == {"memory": 0, "disk": 2, "loading": 0, "retiring": 2}
    assert [path.is_dir() for path in paths] == [False, False, True, True, True, True]
    # AND those still retiring go after retire_after
    clock.advance(31)
    scheduler.run_due()
    assert [path.is_dir() for path in paths] == [False, False, False, False, True, True]
    assert cache.counts()["retiring"] == 0


def test_folders_left_by_a_previous_run_are_adopted_only_if_s3_still_holds_their_content(tmp_path):
    from agent.domain.index import ModelState, VersionEntry
    from agent.domain.versions import ObjectInfo, VersionListing

    # GIVEN folders a previous run left: a and b's version 1, a model gone from S3, a partial download
    _, store, cache, _, _ = make(tmp_path, 1, 3)
    kept = {name: store.folder(name, 1, f"{name:0<64}") for name in ("a", "b", "gone")}
    for folder in kept.values():
        folder.mkdir(parents=True)
    partial = tmp_path / "a" / ".partial-1-x"
    partial.mkdir()
    # WHEN the store is cleaned for the new run, keeping what the cache may adopt
    store.clean(cache.left_by_previous_run)
    assert not partial.exists() and all(folder.is_dir() for folder in kept.values())
    # AND the first listing shows a unchanged and b changed in place
    objects = (ObjectInfo("model.pkl", 1, "e", 0.0),)
    for name, fingerprint in (("a", f"{'a':0<64}"), ("b", "another content")):
        listing = VersionListing(1, objects, fingerprint, "1/")
        cache.observed(name, ModelState({1: VersionEntry(listing, 0.0)}, listed=True))
    cache.after_first_scan()
    # THEN a is on disk, b's stale folder and the gone model's are removed
    assert cache.on_disk() == {"a": {1}}
    assert kept["a"].is_dir() and not kept["b"].exists() and not kept["gone"].exists()
