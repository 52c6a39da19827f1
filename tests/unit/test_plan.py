"""plan(): what to load and unload, as a table of situations."""

from __future__ import annotations

import pytest

from agent.domain.plan import SETTLED_BY_AGE, Failure, Load, Sighting, Unload, plan
from agent.domain.versions import ModelListing, ObjectInfo, VersionListing

NOW = 1_000_000.0


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


def kinds(result) -> list[tuple[str, int]]:
    return [(type(a).__name__, a.version) for a in result.actions]


@pytest.mark.parametrize(
    ("desired", "loaded", "expected"),
    [
        pytest.param(listing(version(1)), {}, [("Load", 1)], id="new-version"),
        pytest.param(listing(version(1)), {1: "fp1"}, [], id="already-loaded"),
        pytest.param(listing(version(1, fp="new")), {1: "fp1"}, [("Load", 1)], id="updated-in-place"),
        pytest.param(listing(), {1: "fp1"}, [("Unload", 1)], id="removed"),
        pytest.param(listing(version(1), version(2)), {}, [("Load", 2), ("Load", 1)], id="latest-first"),
        pytest.param(
            listing(version(2, incomplete="no marker", awaiting_marker=True)),
            {2: "fp2"},
            [("Unload", 2)],
            id="marker-removed",
        ),
        pytest.param(
            listing(version(2, fp="x", incomplete="missing shard")),
            {2: "fp2"},
            [],
            id="incomplete-update-keeps-serving",
        ),
        pytest.param(listing(error="mixed"), {1: "fp1"}, [], id="invalid-prefix-keeps-serving"),
        pytest.param(listing(version(1, incomplete="no marker", awaiting_marker=True)), {}, [], id="not-yet-complete"),
    ],
)
def test_plan_without_settle(desired, loaded, expected):
    assert kinds(plan(desired, loaded, {}, {}, NOW)) == expected


def test_a_failed_version_waits_for_its_backoff_unless_it_changed():
    failure = {3: Failure("fp3", retry_at=NOW + 5, attempts=1, error="boom")}
    waiting = plan(listing(version(3)), {}, failure, {}, NOW)
    assert waiting.actions == () and waiting.wake_at == NOW + 5
    assert kinds(plan(listing(version(3)), {}, failure, {}, NOW + 5)) == [("Load", 3)]
    assert kinds(plan(listing(version(3, fp="fixed")), {}, failure, {}, NOW)) == [("Load", 3)]


def test_settle_waits_for_a_stable_listing():
    fresh = listing(version(1, written=NOW))
    first = plan(fresh, {}, {}, {}, NOW, settle=1.0)
    assert first.actions == () and first.wake_at == NOW + 1.0
    assert first.sightings[1] == Sighting("fp1", NOW)
    assert first.settling == {1}
    # the same listing a second later loads
    settled = plan(fresh, {}, {}, first.sightings, NOW + 1.0, settle=1.0)
    assert kinds(settled) == [("Load", 1)] and settled.settling == set()
    # a listing that changed restarts the window
    changed = plan(listing(version(1, fp="other", written=NOW)), {}, {}, first.sightings, NOW + 1.0, settle=1.0)
    assert changed.actions == () and changed.wake_at == NOW + 2.0 and changed.settling == {1}


def test_only_versions_put_off_by_the_settle_window_are_settling():
    failure = {2: Failure("fp2", retry_at=NOW + 5, attempts=1, error="boom")}
    old = NOW - SETTLED_BY_AGE - 1
    result = plan(
        listing(version(1, written=old), version(2, written=old), version(3, written=NOW)), {}, failure, {}, NOW, 1.0
    )
    assert kinds(result) == [("Load", 1)] and result.settling == {3}


def test_settle_trusts_objects_written_long_ago():
    old = listing(version(1, written=NOW - SETTLED_BY_AGE - 1))
    assert kinds(plan(old, {}, {}, {}, NOW, settle=1.0)) == [("Load", 1)]


def test_loads_carry_what_they_replace():
    result = plan(listing(version(1, fp="new")), {1: "fp1"}, {}, {}, NOW)
    assert isinstance(result.actions[0], Load) and result.actions[0].replaces == "fp1"
    assert isinstance(plan(listing(), {4: "x"}, {}, {}, NOW).actions[0], Unload)
