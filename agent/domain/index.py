"""The index: what the agent knows of one model in S3, as one immutable value per model.

Per version: its listing (keys, sizes, ETags, fingerprint, completeness), when that content was
first seen (the settle window), its last failure (attempts, retry time, whether it may pass), and
the earliest event that announced it and is not served yet (reload latency). Per model: the error
that makes its prefix unusable, its last event and reload, and what its worker is doing (loading,
settling). The model's worker owns the value: `observe()` folds a listing and the request's event
into it, `plan()` reads it, `record()` folds the outcomes in (agent.domain.plan); `/models` and
the gauges are derived from it. Keeping it current downloads nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.domain.versions import ModelListing, VersionListing


@dataclass(frozen=True)
class Failure:
    """The last failed attempt at one content of a version."""

    fingerprint: str
    error: str
    attempts: int  # consecutive failures of this fingerprint
    retry_at: float
    may_pass: bool = False  # temporary (network, TF Serving busy): a redelivered event retries it at once


@dataclass(frozen=True)
class VersionEntry:
    listing: VersionListing
    first_seen: float  # when this fingerprint was first listed
    failure: Failure | None = None
    announced_at: float | None = None  # earliest time of an event about it not served yet

    @property
    def fingerprint(self) -> str:
        return self.listing.fingerprint

    @property
    def blocked(self) -> bool:
        """Incomplete for a reason other than its ready marker (a missing shard, a refused key)."""
        return self.listing.incomplete is not None and not self.listing.awaiting_marker


@dataclass(frozen=True)
class ModelState:
    versions: Mapping[int, VersionEntry] = field(default_factory=dict)
    error: str | None = None  # the prefix as a whole is invalid, or cannot be listed
    listed: bool = False  # a listing was seen (a model's first listing is a change from nothing)
    last_event: float | None = None
    last_reload: float | None = None
    announced_at: float | None = None  # an event merged with a scan: it names no version
    # Events can name a version before a listing shows it (the event is what makes us look): their
    # times wait here until the listing brings the version, so its load still counts from the event.
    unlisted_events: Mapping[int, float] = field(default_factory=dict)
    loading: frozenset[int] = frozenset()
    settling: frozenset[int] = frozenset()  # put off until their listing has settled

    def fingerprints(self) -> dict[int, str]:
        return {version: entry.fingerprint for version, entry in self.versions.items()}

    def announced(self, version: int) -> float | None:
        """When the event that asked for `version` happened (for the reload latency), if one did."""
        entry = self.versions.get(version)
        return entry.announced_at if entry is not None and entry.announced_at is not None else self.announced_at


@dataclass(frozen=True)
class Served:
    """One version in memory: what the handler's `load_model` returned (or TF Serving's servable)."""

    version: int
    fingerprint: str
    path: Path
    value: Any
    loaded_at: float
    details: Mapping[str, Any] = field(default_factory=dict)  # shown in /models (e.g. tfserving_version)


@dataclass(frozen=True)
class Observation:
    state: ModelState
    drift: bool  # a scan found a change no event announced


def note_event(state: ModelState, event_time: float | None, versions: frozenset[int] | None) -> ModelState:
    """Remember an event's time: the model's last event, and per version named the earliest unserved one."""
    if event_time is None:
        return state
    if versions is None:
        earliest = min(event_time, state.announced_at or event_time)
        return replace(state, last_event=event_time, announced_at=earliest)
    entries = dict(state.versions)
    pending = dict(state.unlisted_events)
    for version in versions:
        entry = entries.get(version)
        if entry is not None:
            earliest = min(event_time, entry.announced_at or event_time)
            entries[version] = replace(entry, announced_at=earliest)
        else:
            pending[version] = min(event_time, pending.get(version, event_time))
    return replace(state, versions=entries, last_event=event_time, unlisted_events=pending)


def retry_now(state: ModelState, versions: frozenset[int] | None, now: float) -> ModelState:
    """A redelivered event retries now the versions it names whose failure may have passed: the message
    is left again if it fails, so its queue's redrive policy counts the tries."""
    entries = dict(state.versions)
    for version, entry in state.versions.items():
        failure = entry.failure
        if failure is not None and failure.may_pass and (versions is None or version in versions):
            entries[version] = replace(entry, failure=replace(failure, retry_at=now))
    return replace(state, versions=entries)


def observe(state: ModelState, listing: ModelListing, now: float, from_scan: bool, count_drift: bool) -> Observation:
    """Fold a fresh listing into the index: new contents are first seen now, failures stay with the
    versions still loadable, versions gone from S3 are forgotten."""
    pending = state.unlisted_events
    loadable = listing.loadable
    entries: dict[int, VersionEntry] = {}
    for version, item in listing.versions.items():
        previous = state.versions.get(version)
        if previous is None:
            entries[version] = VersionEntry(item, now, None, pending.get(version))
            continue
        first_seen = previous.first_seen if previous.fingerprint == item.fingerprint else now
        failure = previous.failure if version in loadable else None
        entries[version] = VersionEntry(item, first_seen, failure, previous.announced_at)
    drift = from_scan and count_drift and state.fingerprints() != {v: e.fingerprint for v, e in entries.items()}
    unlisted = {v: at for v, at in pending.items() if v not in entries}
    observed = replace(state, versions=entries, error=listing.error, listed=True, unlisted_events=unlisted)
    return Observation(observed, drift)


def known_versions(state: ModelState, loaded: Mapping[int, Any]) -> set[int]:
    """The versions whose every change matters: loaded, failed (awaiting a retry) or blocked."""
    return set(loaded) | {v for v, e in state.versions.items() if e.failure is not None or e.blocked}
