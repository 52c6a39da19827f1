"""Discovery of versions from a model prefix's listing: a table of layouts."""

from __future__ import annotations

import pytest

from agent.domain.versions import ObjectInfo, discover, fingerprint, unsafe_key_reason


def objs(*keys: str) -> list[ObjectInfo]:
    return [ObjectInfo(key, 0 if key.endswith("/") else 1, f"etag-{key}") for key in keys]


@pytest.mark.parametrize(
    ("keys", "marker", "loadable", "error"),
    [
        pytest.param(("1/model.pkl", "2/model.pkl"), None, [1, 2], None, id="versioned"),
        pytest.param(("model.pkl", "variables/v.index"), None, [1], None, id="non-versioned-with-subfolder"),
        pytest.param((), None, [], None, id="empty"),
        pytest.param(("1/model.pkl", "README"), None, [], "other entries", id="mixed-file-and-versions"),
        pytest.param(("1/model.pkl", "latest/model.pkl"), None, [], "other entries", id="non-integer-folder-beside"),
        pytest.param(("a/model.pkl", "b/model.pkl"), None, [], "non-integer folders", id="only-non-integer-folders"),
        pytest.param(("1/model.pkl", "01/model.pkl"), None, [], "two folders", id="same-version-twice"),
        pytest.param(("1/model.pkl", "1/_READY", "2/model.pkl"), "_READY", [1], None, id="marker-gates-version"),
        pytest.param(("2/_READY",), "_READY", [], None, id="marker-alone"),
        pytest.param(("1/model.pkl", "1/", "2/"), None, [1], None, id="folder-placeholders-ignored"),
        pytest.param(("1/model.pkl", "2/../../x"), None, [1], None, id="unsafe-key-blocks-its-version"),
    ],
)
def test_discover(keys, marker, loadable, error):
    listing = discover(objs(*keys), marker)
    assert sorted(listing.loadable) == loadable
    if error is None:
        assert listing.error is None
    else:
        assert listing.error is not None and error in listing.error


def test_the_marker_is_not_part_of_the_version_and_its_absence_is_flagged():
    waiting = discover(objs("1/model.pkl"), "_READY").versions[1]
    assert waiting.awaiting_marker and "_READY" in (waiting.incomplete or "")
    ready = discover(objs("1/model.pkl", "1/_READY"), "_READY").versions[1]
    assert [o.key for o in ready.objects] == ["model.pkl"]
    assert ready.fingerprint == waiting.fingerprint


@pytest.mark.parametrize(
    ("key", "unsafe"),
    [
        pytest.param("model.pkl", False, id="plain"),
        pytest.param("a/b/c.bin", False, id="nested"),
        pytest.param("../x", True, id="dotdot"),
        pytest.param("a/./b", True, id="dot"),
        pytest.param("/etc/passwd", True, id="absolute"),
        pytest.param("a//b", True, id="empty-segment"),
        pytest.param("a\\..\\b", True, id="backslash"),
    ],
)
def test_unsafe_keys(key, unsafe):
    assert (unsafe_key_reason(key) is not None) == unsafe


def test_fingerprint_sees_content_changes_not_order():
    a = [ObjectInfo("x", 1, "e1"), ObjectInfo("y", 2, "e2")]
    assert fingerprint(a) == fingerprint(reversed(a))
    assert fingerprint(a) != fingerprint([ObjectInfo("x", 1, "e9"), ObjectInfo("y", 2, "e2")])
    assert fingerprint(a) != fingerprint([ObjectInfo("x", 1, "e1"), ObjectInfo("z", 2, "e2")])
    # LastModified alone never changes a fingerprint
    assert fingerprint(a) == fingerprint([ObjectInfo("x", 1, "e1", 99.0), ObjectInfo("y", 2, "e2", 5.0)])
