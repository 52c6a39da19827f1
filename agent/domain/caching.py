"""Multi-model caching (Cortex's `cache_size` / `disk_cache_size`): the pure rules, as functions of values.

With caching, what S3 holds (the index) and what is loaded are apart: the index stays current for
every model, and only some entries (one (model, version) each) are in memory or on disk. These
functions decide, from plain values:

- `eager_versions`: which versions a reconcile loads without a request asking (refresh what is cached:
  an in-place update of a loaded version, a new latest of a model whose latest is loaded);
- `latest_candidates` / `resolve`: which version a request means ("latest" is the highest complete,
  settled version not known to have failed, served from memory while a newer one is still loading);
- `victims`: which entries an insertion evicts (least recently used first, never the one inserted,
  never one that is loading), so the cache never holds more than its size.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from agent.domain.index import ModelState

Key = TypeVar("Key")


@dataclass(frozen=True)
class CacheSizes:
    """`cache_size` entries in memory, `disk_cache_size` version folders on disk (both > 0, memory <= disk)."""

    memory: int
    disk: int


def latest_candidates(state: ModelState) -> tuple[int, ...]:
    """The versions "latest" may mean, best first: complete, settled, and not failed with this content."""
    found = []
    for version, entry in state.versions.items():
        if entry.listing.incomplete is not None or version in state.settling:
            continue
        failure = entry.failure
        if failure is not None and failure.fingerprint == entry.fingerprint:
            continue
        found.append(version)
    return tuple(sorted(found, reverse=True))


def latest_or_failed(state: ModelState) -> int | None:
    """The version a request for "latest" must try: the best candidate, else (all failed) the highest
    complete version, whose recorded failure the request answers with."""
    candidates = latest_candidates(state)
    if candidates:
        return candidates[0]
    complete = [v for v, e in state.versions.items() if e.listing.incomplete is None and v not in state.settling]
    return max(complete, default=None)


def resolve(candidates: tuple[int, ...], loading: Collection[int], in_memory: Collection[int]) -> int | None:
    """The version "latest" serves now: the best candidate, unless it is still being loaded eagerly
    while an older candidate is in memory (a new version is loaded before "latest" moves to it)."""
    if not candidates:
        return None
    best = candidates[0]
    if best in in_memory or best not in loading:
        return best
    return next((version for version in candidates[1:] if version in in_memory), best)


def eager_versions(state: ModelState, loaded: Mapping[int, str]) -> frozenset[int]:
    """The versions a reconcile loads with caching on, unasked: those in memory (so an in-place update
    is loaded in the background and swapped in), and a new latest of a model whose latest is in memory."""
    eager = set(loaded)
    candidates = latest_candidates(state)
    if loaded and candidates and candidates[0] not in loaded:
        older = [version for version in candidates if version < candidates[0]]
        if older and older[0] in loaded:  # what "latest" meant until now is cached: keep latest warm
            eager.add(candidates[0])
    return frozenset(eager)


def victims(last_used: Mapping[Key, int], resident: Iterable[Key], keep: Collection[Key], capacity: int) -> list[Key]:
    """Entries to evict so that `resident` holds at most `capacity`: least recently used first (an
    entry never used counts as oldest), never one in `keep` (the one being inserted, those loading).
    Fewer when the rest are all kept: the cache then holds only what it must."""
    entries = list(resident)
    excess = len(entries) - capacity
    if excess <= 0:
        return []
    evictable = sorted((key for key in entries if key not in keep), key=lambda key: last_used.get(key, -1))
    return evictable[:excess]
