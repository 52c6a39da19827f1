"""Plan, then act: what to load and unload for one model, as a pure function of plain values.

`plan()` compares the versions S3 holds (a `ModelListing`) with what is loaded, what failed
and what was seen before, and returns the actions plus the moment to look again. It does no
I/O and reads no clock, so every rule below is a row in a unit-test table.

Rules:
- a loadable version that is not loaded, or is loaded with another fingerprint, is loaded;
- a loaded version that is gone from S3, or whose ready marker is gone, is unloaded;
- an invalid prefix, or a version incomplete for another reason, changes nothing that serves;
- a version that failed is retried after its backoff, or at once when its listing changed;
- without a ready marker, a version is loaded once its listing has been stable for `settle`
  seconds (or its objects were last written long enough ago).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.domain.versions import ModelListing, VersionListing

# Objects untouched for this long are taken as settled without watching them (e.g. at start),
# with a margin for the clock difference between S3 and this machine.
SETTLED_BY_AGE = 60.0


@dataclass(frozen=True)
class Load:
    listing: VersionListing
    replaces: str | None = None  # the fingerprint being replaced, for an in-place update

    @property
    def version(self) -> int:
        return self.listing.version


@dataclass(frozen=True)
class Unload:
    version: int
    reason: str


Action = Load | Unload


@dataclass(frozen=True)
class Failure:
    fingerprint: str
    retry_at: float
    attempts: int
    error: str


@dataclass(frozen=True)
class Sighting:
    """A listing first seen at `since` with this fingerprint (for the settle window)."""

    fingerprint: str
    since: float


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    wake_at: float | None  # look at this model again then (settle window, backoff), or None
    sightings: Mapping[int, Sighting] = field(default_factory=dict)
    settling: frozenset[int] = frozenset()  # versions put off until their listing has settled


def plan(
    listing: ModelListing,
    loaded: Mapping[int, str],
    failures: Mapping[int, Failure],
    sightings: Mapping[int, Sighting],
    now: float,
    settle: float = 0.0,
) -> Plan:
    if listing.error is not None:
        return Plan((), None, dict(sightings))
    loads: list[Action] = []
    wakes: list[float] = []
    new_sightings: dict[int, Sighting] = {}
    settling: set[int] = set()
    for version, candidate in sorted(listing.loadable.items(), reverse=True):
        current = loaded.get(version)
        if current == candidate.fingerprint:
            continue
        if settle > 0:
            seen = new_sightings[version] = _sighting(sightings.get(version), candidate, now)
            if now < min(seen.since + settle, candidate.newest_change + max(settle, SETTLED_BY_AGE)):
                wakes.append(seen.since + settle)
                settling.add(version)
                continue
        failure = failures.get(version)
        if failure is not None and failure.fingerprint == candidate.fingerprint and now < failure.retry_at:
            wakes.append(failure.retry_at)
            continue
        loads.append(Load(candidate, replaces=current))
    unloads: list[Action] = []
    for version in sorted(loaded):
        present = listing.versions.get(version)
        if present is None:
            unloads.append(Unload(version, "removed from S3"))
        elif present.awaiting_marker:
            unloads.append(Unload(version, "its ready marker was removed"))
    return Plan(tuple(loads + unloads), min(wakes, default=None), new_sightings, frozenset(settling))


def _sighting(previous: Sighting | None, candidate: VersionListing, now: float) -> Sighting:
    """The sighting of `candidate`: the previous one while its listing is unchanged, else a new one."""
    if previous is not None and previous.fingerprint == candidate.fingerprint:
        return previous
    return Sighting(candidate.fingerprint, now)
