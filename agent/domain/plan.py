"""Plan, then act, then record: one model's reconcile as two pure functions of plain values.

`plan(state, loaded, now, settle)` reads the model's index value (agent.domain.index) and what is
loaded, and returns the actions plus the moment to look again; the reconciler executes them; then
`record(state, plan, results, now, backoff)` folds how each action went into the next value. No I/O,
no clock: every rule below is a row in a unit-test table (tests/unit/test_plan.py).

plan():
- with caching (`eager` given), only the versions in `eager` are loaded; the rest stay in S3 only;
- a loadable version that is not loaded, or is loaded with another fingerprint, is loaded, latest first;
- a loaded version that is gone from S3, or whose ready marker is gone, is unloaded;
- an invalid prefix, or a version incomplete for another reason, changes nothing that serves;
- a version that failed is retried after its backoff, or at once when its listing changed;
- without a ready marker, a version is loaded once its listing has been stable for `settle`
  seconds (or its objects were last written long enough ago: SETTLED_BY_AGE).

record():
- a loaded version forgets its failure and its event; the model's last reload moves;
- a failed version counts its attempts (of that fingerprint) and waits `backoff * 2^(attempts-1)`
  (capped), or the delay its error asked for; a temporary failure may be retried by a redelivery;
- once nothing waits (no settle window, no failure), the events the model heard are all served.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from agent.domain.index import Failure, ModelState, VersionEntry
from agent.domain.versions import VersionListing

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
class Plan:
    actions: tuple[Action, ...]
    wake_at: float | None  # look at this model again then (settle window, backoff), or None
    settling: frozenset[int] = frozenset()  # versions put off until their listing has settled

    @property
    def loads(self) -> frozenset[int]:
        return frozenset(action.version for action in self.actions if isinstance(action, Load))


def plan(
    state: ModelState,
    loaded: Mapping[int, str],
    now: float,
    settle: float = 0.0,
    eager: frozenset[int] | None = None,
) -> Plan:
    """`eager`: with multi-model caching, the versions to load (agent.domain.caching.eager_versions plus
    those a request asked for); None: every loadable version, as without caching."""
    if state.error is not None:
        return Plan((), None)
    loads: list[Action] = []
    wakes: list[float] = []
    settling: set[int] = set()
    for version, entry in sorted(state.versions.items(), reverse=True):
        current = loaded.get(version)
        if entry.listing.incomplete is not None or current == entry.fingerprint:
            continue
        if settle > 0 and _settling(entry, now, settle):
            wakes.append(entry.first_seen + settle)
            settling.add(version)
        elif eager is not None and version not in eager:
            continue  # in S3 only, until a request asks for it
        elif _backing_off(entry, now):
            assert entry.failure is not None
            wakes.append(entry.failure.retry_at)
        else:
            loads.append(Load(entry.listing, replaces=current))
    unloads: list[Action] = []
    for version in sorted(loaded):
        present = state.versions.get(version)
        if present is None:
            unloads.append(Unload(version, "removed from S3"))
        elif present.listing.awaiting_marker:
            unloads.append(Unload(version, "its ready marker was removed"))
    return Plan(tuple(loads + unloads), min(wakes, default=None), frozenset(settling))


def _settling(entry: VersionEntry, now: float, settle: float) -> bool:
    """Whether the version's listing has not settled yet (stable for `settle` s, or written long ago)."""
    settled_at = min(entry.first_seen + settle, entry.listing.newest_change + max(settle, SETTLED_BY_AGE))
    return now < settled_at


def _backing_off(entry: VersionEntry, now: float) -> bool:
    """Whether this very content failed and its retry is not due yet."""
    failure = entry.failure
    return failure is not None and failure.fingerprint == entry.fingerprint and now < failure.retry_at


# -- outcomes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    version: int
    at: float


@dataclass(frozen=True)
class Failed:
    version: int
    fingerprint: str
    error: str
    temporary: bool
    delay: float | None = None  # the error asked to be retried after this many seconds


@dataclass(frozen=True)
class Unloaded:
    version: int
    at: float


Result = Loaded | Failed | Unloaded


@dataclass(frozen=True)
class Backoff:
    first: float  # seconds before the first retry
    most: float  # cap of the doubling delay

    def delay(self, attempts: int) -> float:
        return float(min(self.first * 2 ** (attempts - 1), self.most))


@dataclass(frozen=True)
class Recorded:
    state: ModelState
    wake_at: float | None  # the plan's wake-up or the earliest retry of a new failure


def record(state: ModelState, planned: Plan, results: Sequence[Result], now: float, backoff: Backoff) -> Recorded:
    entries = dict(state.versions)
    last_reload = state.last_reload
    retries: list[float] = []
    for result in results:
        if isinstance(result, Failed):
            entry = entries.get(result.version)
            if entry is None:
                continue
            failure = _failure(entry, result, now, backoff)
            entries[result.version] = replace(entry, failure=failure)
            retries.append(failure.retry_at)
            continue
        last_reload = result.at
        entry = entries.get(result.version)
        if isinstance(result, Loaded) and entry is not None:
            entries[result.version] = replace(entry, failure=None, announced_at=None)
    state = replace(state, versions=entries, last_reload=last_reload, loading=frozenset(), settling=planned.settling)
    if planned.wake_at is None and not retries and _announced(state):  # nothing waits: the events are served
        state = replace(
            state,
            versions={v: e if e.announced_at is None else replace(e, announced_at=None) for v, e in entries.items()},
            announced_at=None,
            unlisted_events={},
        )
    return Recorded(state, min([*retries, *([planned.wake_at] if planned.wake_at is not None else [])], default=None))


def _announced(state: ModelState) -> bool:
    """Whether an event's time waits in the value (most reconciles of a scan have none: nothing to clear)."""
    return (
        state.announced_at is not None
        or bool(state.unlisted_events)
        or any(entry.announced_at is not None for entry in state.versions.values())
    )


def _failure(entry: VersionEntry, result: Failed, now: float, backoff: Backoff) -> Failure:
    previous = entry.failure
    attempts = previous.attempts + 1 if previous and previous.fingerprint == result.fingerprint else 1
    delay = result.delay if result.delay is not None else backoff.delay(attempts)
    return Failure(result.fingerprint, result.error, attempts, now + delay, result.temporary)
