"""observe(), plan() and record(): a model's reconcile as tables of situations (agent.domain.index, .plan)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.domain.index import Failure, ModelState, VersionEntry, note_event, observe, retry_now
from agent.domain.plan import SETTLED_BY_AGE, Backoff, Failed, Load, Loaded, Plan, Unload, Unloaded, plan, record
from agent.domain.versions import ModelListing, ObjectInfo, VersionListing

NOW = 1_000_000.0
BACKOFF = Backoff(first=1.0, most=60.0)


def version(
    number: int,
    fp: str = "fp",
    incomplete: str | None = None,
    awaiting_marker: bool = False,
    written: float = NOW - 3600,
) -> VersionListing:
    return VersionListing(
        number, (ObjectInfo("m", 1, "e", written),), f"{fp}{number}", f"{number}/", incomplete, awaiting_marker
    )


def listing(*versions: VersionListing, error: str | None = None) -> ModelListing:
    return ModelListing({v.version: v for v in versions}, error)


def state(
    *versions: VersionListing, error: str | None = None, first_seen: float = NOW, **failures: Failure
) -> ModelState:
    """The index value after seeing these versions first at `first_seen`; failures by `v<N>=Failure(...)`."""
    entries = {v.version: VersionEntry(v, first_seen, failures.get(f"v{v.version}")) for v in versions}
    return ModelState(entries, error, listed=True)


def failure(fp: str, retry_at: float, attempts: int = 1, may_pass: bool = False) -> Failure:
    return Failure(fp, "boom", attempts, retry_at, may_pass)


def kinds(result: Plan) -> list[tuple[str, int]]:
    return [(type(a).__name__, a.version) for a in result.actions]


# -- plan() ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "loaded", "expected"),
    [
        pytest.param(state(version(1)), {}, [("Load", 1)], id="new-version"),
        pytest.param(state(version(1)), {1: "fp1"}, [], id="already-loaded"),
        pytest.param(state(version(1, fp="new")), {1: "fp1"}, [("Load", 1)], id="updated-in-place"),
        pytest.param(state(), {1: "fp1"}, [("Unload", 1)], id="removed"),
        pytest.param(state(version(1), version(2)), {}, [("Load", 2), ("Load", 1)], id="latest-first"),
        pytest.param(
            state(version(2, incomplete="no marker", awaiting_marker=True)),
            {2: "fp2"},
            [("Unload", 2)],
            id="marker-removed",
        ),
        pytest.param(
            state(version(2, fp="x", incomplete="missing shard")), {2: "fp2"}, [], id="incomplete-update-keeps-serving"
        ),
        pytest.param(state(error="mixed"), {1: "fp1"}, [], id="invalid-prefix-keeps-serving"),
        pytest.param(state(version(1, incomplete="no marker", awaiting_marker=True)), {}, [], id="not-yet-complete"),
        pytest.param(state(version(3), v3=failure("fp3", NOW + 5)), {}, [], id="failed-waits-for-its-backoff"),
        pytest.param(state(version(3), v3=failure("fp3", NOW)), {}, [("Load", 3)], id="failed-retried-when-due"),
        pytest.param(
            state(version(3, fp="fixed"), v3=failure("fp3", NOW + 5)), {}, [("Load", 3)], id="failed-but-changed"
        ),
    ],
)
def test_plan_without_settle(index, loaded, expected):
    assert kinds(plan(index, loaded, NOW)) == expected


@pytest.mark.parametrize(
    ("index", "now", "expected", "wake_at", "settling"),
    [
        pytest.param(state(version(1, written=NOW)), NOW, [], NOW + 1, {1}, id="fresh-listing-settles"),
        pytest.param(state(version(1, written=NOW)), NOW + 1, [("Load", 1)], None, set(), id="stable-for-settle"),
        pytest.param(
            state(version(1, written=NOW), first_seen=NOW + 1), NOW + 1, [], NOW + 2, {1}, id="changed-restarts-window"
        ),
        pytest.param(
            state(version(1, written=NOW - SETTLED_BY_AGE - 1)), NOW, [("Load", 1)], None, set(), id="written-long-ago"
        ),
        pytest.param(
            state(
                version(1, written=NOW - SETTLED_BY_AGE - 1),
                version(2, written=NOW - SETTLED_BY_AGE - 1),
                version(3, written=NOW),
                v2=failure("fp2", NOW + 5),
            ),
            NOW,
            [("Load", 1)],
            NOW + 1,
            {3},
            id="only-the-settle-window-is-settling",
        ),
    ],
)
def test_plan_with_settle(index, now, expected, wake_at, settling):
    result = plan(index, {}, now, settle=1.0)
    assert kinds(result) == expected
    assert result.wake_at == wake_at
    assert result.settling == settling


def test_loads_carry_what_they_replace():
    result = plan(state(version(1, fp="new")), {1: "fp1"}, NOW)
    assert isinstance(result.actions[0], Load) and result.actions[0].replaces == "fp1"
    assert isinstance(plan(state(), {4: "x"}, NOW).actions[0], Unload)


# -- observe() ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "fresh", "first_seen", "kept_failure"),
    [
        pytest.param(
            state(version(1), first_seen=NOW - 5), listing(version(1)), NOW - 5, None, id="unchanged-keeps-sighting"
        ),
        pytest.param(
            state(version(1), first_seen=NOW - 5), listing(version(1, fp="x")), NOW, None, id="changed-is-new"
        ),
        pytest.param(ModelState(), listing(version(1)), NOW, None, id="first-listing"),
        pytest.param(
            state(version(1), v1=failure("fp1", NOW + 9)),
            listing(version(1)),
            NOW,
            failure("fp1", NOW + 9),
            id="failure-stays",
        ),
        pytest.param(
            state(version(1), v1=failure("fp1", NOW + 9)),
            listing(version(1, incomplete="no marker", awaiting_marker=True)),
            NOW,
            None,
            id="failure-goes-with-loadability",
        ),
    ],
)
def test_observe_folds_a_listing_into_the_index(before, fresh, first_seen, kept_failure):
    observed = observe(before, fresh, NOW, from_scan=False, count_drift=True).state
    assert observed.versions[1].first_seen == first_seen
    assert observed.versions[1].failure == kept_failure


def test_observe_forgets_versions_gone_from_s3_and_takes_the_prefix_error():
    observed = observe(state(version(1), version(2)), listing(error="mixed"), NOW, False, True).state
    assert observed.versions == {} and observed.error == "mixed"


@pytest.mark.parametrize(
    ("before", "fresh", "from_scan", "count_drift", "drift"),
    [
        pytest.param(state(version(1)), listing(version(1)), True, True, False, id="scan-no-change"),
        pytest.param(state(version(1)), listing(version(1), version(2)), True, True, True, id="scan-new-version"),
        pytest.param(state(version(1)), listing(version(1, fp="x")), True, True, True, id="scan-changed-in-place"),
        pytest.param(ModelState(), listing(version(1)), True, True, True, id="scan-new-model-from-nothing"),
        pytest.param(state(version(1)), listing(version(1), version(2)), False, True, False, id="event-is-no-drift"),
        pytest.param(state(version(1)), listing(version(1), version(2)), True, False, False, id="before-first-scan"),
    ],
)
def test_drift_is_a_change_only_a_scan_found(before, fresh, from_scan, count_drift, drift):
    assert observe(before, fresh, NOW, from_scan, count_drift).drift is drift


# -- events ---------------------------------------------------------------------------------------


def test_an_event_is_remembered_per_version_until_served():
    # GIVEN version 2 known, WHEN events name versions 2 (twice) and 3 (not listed yet)
    noted = note_event(state(version(2)), NOW - 3, frozenset({2}))
    noted = note_event(noted, NOW - 1, frozenset({2, 3}))
    # THEN the earliest event per version is kept, the unlisted one waits for its listing
    assert noted.announced(2) == NOW - 3 and noted.last_event == NOW - 1
    assert noted.unlisted_events == {3: NOW - 1}
    listed = observe(noted, listing(version(2), version(3)), NOW, False, True).state
    assert listed.announced(3) == NOW - 1 and listed.unlisted_events == {}


def test_an_event_without_keys_counts_for_any_version():
    assert note_event(state(version(1)), NOW - 2, None).announced(1) == NOW - 2


@pytest.mark.parametrize(
    ("may_pass", "named", "retried"),
    [
        pytest.param(True, frozenset({1}), True, id="temporary-named-retries-now"),
        pytest.param(True, None, True, id="temporary-no-keys-retries-now"),
        pytest.param(True, frozenset({2}), False, id="temporary-not-named-waits"),
        pytest.param(False, frozenset({1}), False, id="permanent-waits"),
    ],
)
def test_a_redelivered_event_retries_a_temporary_failure_at_once(may_pass, named, retried):
    before = state(version(1), v1=failure("fp1", NOW + 30, may_pass=may_pass))
    after = retry_now(before, named, NOW)
    assert (kinds(plan(after, {}, NOW)) == [("Load", 1)]) is retried


# -- record() -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "result", "attempts", "retry_at"),
    [
        pytest.param(None, Failed(1, "fp1", "boom", False), 1, NOW + 1, id="first-failure"),
        pytest.param(failure("fp1", NOW, attempts=3), Failed(1, "fp1", "boom", False), 4, NOW + 8, id="doubles"),
        pytest.param(failure("fp1", NOW, attempts=9), Failed(1, "fp1", "boom", False), 10, NOW + 60, id="capped"),
        pytest.param(failure("old", NOW, attempts=5), Failed(1, "fp1", "boom", False), 1, NOW + 1, id="new-content"),
        pytest.param(None, Failed(1, "fp1", "busy", True, delay=7.0), 1, NOW + 7, id="error-asks-a-delay"),
    ],
)
def test_record_counts_failures_and_backs_off(previous, result, attempts, retry_at):
    before = state(version(1), v1=previous) if previous else state(version(1))
    recorded = record(before, Plan((), None), [result], NOW, BACKOFF)
    got = recorded.state.versions[1].failure
    assert got is not None and (got.attempts, got.retry_at, got.may_pass) == (attempts, retry_at, result.temporary)
    assert recorded.wake_at == retry_at


def test_record_a_load_clears_the_failure_and_the_event_and_moves_the_last_reload():
    before = note_event(state(version(1), v1=failure("fp1", NOW)), NOW - 1, frozenset({1}))
    recorded = record(replace(before, loading=frozenset({1})), Plan((), None), [Loaded(1, NOW)], NOW, BACKOFF)
    entry = recorded.state.versions[1]
    assert entry.failure is None and entry.announced_at is None
    assert recorded.state.last_reload == NOW and recorded.state.loading == frozenset() and recorded.wake_at is None


def test_record_keeps_events_while_a_version_settles_and_an_unload_moves_the_last_reload():
    before = note_event(state(version(1), version(2)), NOW - 1, frozenset({2}))
    recorded = record(before, Plan((), NOW + 1, frozenset({2})), [Unloaded(3, NOW)], NOW, BACKOFF)
    assert recorded.state.announced(2) == NOW - 1 and recorded.state.settling == {2}
    assert recorded.state.last_reload == NOW and recorded.wake_at == NOW + 1


# -- plan() with caching: only the eager versions load ----------------------------------------------


@pytest.mark.parametrize(
    ("index", "loaded", "eager", "expected"),
    [
        pytest.param(state(version(1), version(2)), {}, frozenset(), [], id="nothing-asked-nothing-loads"),
        pytest.param(state(version(1), version(2)), {}, frozenset({1}), [("Load", 1)], id="asked-loads"),
        pytest.param(state(version(1, fp="new")), {1: "fp1"}, frozenset({1}), [("Load", 1)], id="cached-refreshed"),
        pytest.param(state(), {1: "fp1"}, frozenset({1}), [("Unload", 1)], id="removed-leaves-memory"),
        pytest.param(state(version(1), v1=failure("fp1", NOW + 5)), {}, frozenset({1}), [], id="asked-but-backing-off"),
    ],
)
def test_plan_with_caching_loads_only_the_eager_versions(index, loaded, eager, expected):
    assert kinds(plan(index, loaded, NOW, eager=eager)) == expected


def test_plan_with_caching_still_tracks_settling_versions():
    # GIVEN a version listed just now, without a marker, that nobody asked for
    planned = plan(state(version(1, written=NOW)), {}, NOW, settle=2.0, eager=frozenset())
    # THEN it loads nothing but waits for the window, so "latest" skips it until it settles
    assert planned.actions == () and planned.settling == {1} and planned.wake_at == NOW + 2.0
